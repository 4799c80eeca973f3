// kbert Android demo: a text classifier running an exported TFLite model with LiteRT.
// Open this folder (mobile_demo/android) in Android Studio. See README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // LiteRT: com.google.ai.edge.litert
        mavenCentral() // JUnit, for bertlogic's tests
    }
}

rootProject.name = "kbert-demo"
include(":app")
include(":bertlogic") // plain Java: tokenizer, packing, softmax/labels, model card
