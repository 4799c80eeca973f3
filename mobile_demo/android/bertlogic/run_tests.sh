#!/usr/bin/env bash
# Compile the bertlogic module (plain Java, no Android) with javac and run its JUnit 4
# tests, including the golden test against mobile_demo/shared/golden_tokens.json.
# Needs a JDK (11+) and JUnit 4 + Hamcrest: on Debian/Ubuntu `apt-get install -y junit4`
# (default-jdk-headless for javac). Override the jars with JUNIT_JAR / HAMCREST_JAR.
# Prints "golden: K/N cases match" and ends with "N passed, N failed"; exits non-zero
# on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
junit="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
hamcrest="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"
for tool in javac java; do
    command -v "$tool" >/dev/null || { echo "run_tests.sh: $tool not found (install a JDK)" >&2; exit 2; }
done
for jar in "$junit" "$hamcrest"; do
    [ -f "$jar" ] || { echo "run_tests.sh: $jar not found (apt-get install -y junit4)" >&2; exit 2; }
done

# A fresh directory per run, so concurrent runs do not clobber each other.
out="$(mktemp -d "${TMPDIR:-/tmp}/bertlogic.XXXXXX")"
trap 'rm -rf "$out"' EXIT
cp="$junit:$hamcrest"

find "$here/src/main/java" -name '*.java' > "$out/main.txt"
find "$here/src/test/java" -name '*.java' > "$out/test.txt"
javac --release 11 -encoding UTF-8 -Xlint:all -d "$out/main" @"$out/main.txt"
javac --release 11 -encoding UTF-8 -Xlint:all -cp "$out/main:$cp" -d "$out/test" @"$out/test.txt"
java -Dkbert.golden="$repo/mobile_demo/shared/golden_tokens.json" \
    -cp "$out/main:$out/test:$cp" dev.kbert.logic.TestRunner
