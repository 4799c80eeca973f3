plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.kbert.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.kbert.demo"
        minSdk = 24 // MediaPipe Tasks' minimum
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
        // Keep the model uncompressed in the APK: MediaPipe memory-maps it from the assets.
        noCompress += "tflite"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    // model_card.json (task, seq_len, labels); the module's tokenizer is not needed here:
    // MediaPipe tokenizes with the vocabulary kbert packs into the .tflite.
    implementation(project(":bertlogic"))
    // MediaPipe Tasks for text from Google Maven: TextClassifier, TextEmbedder, with their
    // own TFLite runtime (so no LiteRT dependency beside it).
    implementation("com.google.mediapipe:tasks-text:0.10.35")
}
