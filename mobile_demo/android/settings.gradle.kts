// kbert Android demo: an exported TFLite model run from raw text with MediaPipe Tasks.
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
        google() // MediaPipe Tasks: com.google.mediapipe:tasks-text
        mavenCentral() // JUnit, for bertlogic's tests
    }
}

rootProject.name = "kbert-demo"
include(":app")
include(":bertlogic") // plain Java: model card (app); tokenizer, packing, softmax for LiteRT apps
