"""The Android demo's plain-Java logic (mobile_demo/android/bertlogic), compiled with
javac and unit-tested with JUnit 4 by its run_tests.sh, including the golden test
against kbert's Python tokenizer (mobile_demo/shared/golden_tokens.json).

The Android app itself cannot be built here (no Android SDK); this is the part CI runs.
Needs a JDK and Debian's junit4 (`apt-get install -y junit4`); skipped without them.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "mobile_demo", "android", "bertlogic", "run_tests.sh")
GOLDEN = os.path.join(REPO, "mobile_demo", "shared", "golden_tokens.json")
JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")


def test_bertlogic_junit_and_golden_agreement():
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: install a JDK to test mobile_demo/android/bertlogic")
    for jar in JARS:
        if not os.path.isfile(jar):
            pytest.skip(f"{jar} not found: `apt-get install -y junit4` to test mobile_demo/android/bertlogic")
    proc = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out

    counts = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert counts, out
    passed, failed = map(int, counts[-1])
    assert failed == 0 and passed > 0, out

    with open(GOLDEN, encoding="utf-8") as f:
        cases = len(json.load(f)["cases"])
    golden = re.search(r"^golden: (\d+)/(\d+) cases match$", proc.stdout, re.M)
    assert golden, out
    assert (int(golden.group(1)), int(golden.group(2))) == (cases, cases), out
