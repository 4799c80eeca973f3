// Versions were current when this was written but could not be resolved here (no
// Google Maven access); Android Studio's upgrade assistant can move them forward.
plugins {
    id("com.android.application") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}
