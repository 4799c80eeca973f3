package dev.kbert.logic;

import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;

/**
 * Runs this module's JUnit 4 tests and ends with one line {@code N passed, N failed}
 * (plus {@code , N skipped} when tests were ignored). Exits 1 when a test failed or none ran.
 * Used by {@code run_tests.sh}; Gradle runs the same classes with its own runner.
 */
public final class TestRunner {
    static final Class<?>[] TESTS = {
        GoldenTokensTest.class,
        WordPieceTokenizerTest.class,
        LabelsTest.class,
        ModelCardTest.class,
    };

    public static void main(String[] args) {
        Result result = JUnitCore.runClasses(TESTS);
        for (Failure failure : result.getFailures()) {
            System.out.println("FAILED " + failure.getTestHeader());
            System.out.println("  " + failure.getMessage());
            // Only this module's frames: JUnit's and the JDK's add nothing.
            for (String line : failure.getTrace().split("\n")) {
                if (line.contains("dev.kbert.")) {
                    System.out.println("  " + line.trim());
                }
            }
        }
        int failed = result.getFailureCount();
        int passed = result.getRunCount() - failed;
        int skipped = result.getIgnoreCount();
        System.out.println(passed + " passed, " + failed + " failed"
                + (skipped > 0 ? ", " + skipped + " skipped" : ""));
        System.exit(failed == 0 && result.getRunCount() > 0 ? 0 : 1);
    }
}
