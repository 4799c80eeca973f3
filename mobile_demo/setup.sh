#!/usr/bin/env bash
# What the mobile_demo tests need besides Python: Debian's chromium (browser test),
# a JDK and junit4 (the Android app's Java logic), and the web demo's npm packages
# from its package-lock.json: playwright-core drives the browser test; LiteRT.js is
# compared with the copy the kbert package ships (kbert/demo/web/litert, refreshed
# by mobile_demo/web/update_litert.py). `kbert demo` itself needs no npm. Installs
# only what is missing; without root or apt-get it says what it skipped (those
# tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/junit4.jar ] || missing+=(junit4)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "mobile_demo/setup.sh: apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "mobile_demo/setup.sh: not root or no apt-get: skipped ${missing[*]} (their tests will skip)"
  fi
fi
if command -v npm >/dev/null 2>&1; then
  { [ -d mobile_demo/web/node_modules/playwright-core ] && [ -d mobile_demo/web/node_modules/@litertjs/core ]; } ||
    npm ci --prefix mobile_demo/web --no-audit --no-fund --silent
  # MediaPipe Tasks for the web (@mediapipe/tasks-text), for tests/mobile_demo/test_mediapipe_web.py.
  [ -d mobile_demo/web/mediapipe/node_modules/@mediapipe/tasks-text ] ||
    npm ci --prefix mobile_demo/web/mediapipe --no-audit --no-fund --silent
else
  echo "mobile_demo/setup.sh: no npm: skipped the web demo's packages (its tests will skip)"
fi
