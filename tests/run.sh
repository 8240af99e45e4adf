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
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(f"tests: {ok} passed, {fail} failed, {skip} skipped")
PY
fi
exit $status
