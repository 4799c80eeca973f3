// Plain Java module with no Android dependency: WordPiece tokenizer, packing into the
// model inputs, softmax/labels and model_card.json reading. The app depends on it; CI
// compiles and tests it without Gradle (run_tests.sh: javac + Debian's junit4).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // The golden file shared with kbert's Python tokenizer and the web demo.
    systemProperty("kbert.golden", file("../../shared/golden_tokens.json").absolutePath)
    testLogging { events("passed", "failed") }
}
