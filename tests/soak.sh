#!/usr/bin/env bash
# The soak (tests/test-soak.c): a million jobs through one patchbayd with
# pool processes killed along the way, then its RSS (within 10% of its
# level after the warm-up), descriptors (as many) and zombie children
# (none). Not part of tests/run.sh: it takes a few minutes.
#   bash tests/soak.sh                      # 1 000 000 jobs in ./build
#   PATCHBAY_SOAK_JOBS=200000 BUILD_DIR=build-asan bash tests/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build"
fi
ninja -C "$build"
abs=$(cd "$build" && pwd)
export PATCHBAYD="$abs/broker/patchbayd"
export PATCHBAY_CLI="$abs/clients/patchbay"
export PATCHBAY_BUILDDIR="$abs"
export PATCHBAY_SRCDIR="$PWD"
export CK_DEFAULT_TIMEOUT=7200
exec "$abs/tests/test-soak"
