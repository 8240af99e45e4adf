#!/usr/bin/env bash
# Builds patchbay in ./build (configuring it the first time) and runs the
# whole test suite. Extra arguments go to `meson test` (e.g. a test name).
# BUILD_DIR and MESON_SETUP_ARGS can change the build directory and options.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
	# shellcheck disable=SC2086
	meson setup "$build" ${MESON_SETUP_ARGS:-}
fi
ninja -C "$build"
status=0
meson test -C "$build" --print-errorlogs "$@" || status=$?
# One plain closing line, whatever meson printed above.
log="$build/meson-logs/testlog.json"
if [ -f "$log" ]; then
	python3 - "$log" <<'PY'
import json, re, sys
# Count Check's own test cases (from each program's "Checks: N, Failures:
# F, Errors: E" line); a program with no such line counts as one test.
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)",
                  t.get("stdout") or "")
    if t.get("result") == "SKIP":
        skipped += 1
    elif m:
        n, f, e = map(int, m.groups())
        passed += n - f - e
        failed += f + e
        if t.get("result") not in ("OK", "EXPECTEDFAIL") and f + e == 0:
            failed += 1   # crashed or timed out after its last check
    elif t.get("result") in ("OK", "EXPECTEDFAIL"):
        passed += 1
    else:
        failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
fi
exit $status
