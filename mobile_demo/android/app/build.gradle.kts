plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.kbert.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.kbert.demo"
        minSdk = 23
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // Keep the model uncompressed in the APK so it can be memory-mapped.
        noCompress += "tflite"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":bertlogic"))
    // LiteRT (formerly TensorFlow Lite) from Google Maven. The 1.4.x line carries the
    // classic org.tensorflow.lite.Interpreter API used here (runSignature by name).
    implementation("com.google.ai.edge.litert:litert:1.4.2")
}
