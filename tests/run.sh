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
# One plain closing line, whatever meson printed above (RUN_SUMMARY=no:
# none, for a caller that sums several builds with tests/summary.sh).
log="$build/meson-logs/testlog.json"
if [ -f "$log" ] && [ "${RUN_SUMMARY:-yes}" != no ]; then
	bash tests/summary.sh "$log"
fi
exit $status
