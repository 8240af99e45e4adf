#!/usr/bin/env bash
# Runs the libFuzzer targets of a -Dfuzz=true build (see fuzz/meson.build):
#   bash fuzz/run.sh BUILD_DIR SECONDS [TARGET...]      (default: all)
#   bash fuzz/run.sh BUILD_DIR runs=N [TARGET...]       (N executions each)
# FUZZ_FLAGS adds libFuzzer flags: "-jobs=2 -workers=2" for two processes
# (each makes N runs, logs in BUILD_DIR/fuzz-logs/fuzz-JOB.log),
# "-entropic=0", which makes
# fuzz-broker 2 to 3 times faster (its many features make the entropic
# schedule's bookkeeping most of the time).
# Each target starts from its checked-in corpus (fuzz/corpus-NAME); what it
# finds goes to BUILD_DIR/fuzz-corpus/NAME, crashes to
# BUILD_DIR/fuzz-artifacts/ (copy a crash into fuzz/corpus-NAME as
# regress-WHAT once it is understood, and fix it). UBSan reports stop the
# run, except the known ones in fuzz/ubsan.supp. Targets run one after the
# other; give each its own invocation to run them in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS|runs=N [TARGET...]}
limit=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS|runs=N [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(proto broker)
case $limit in
runs=*) flag="-runs=${limit#runs=}" ;;
*) flag="-max_total_time=$limit" ;;
esac
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/ubsan.supp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
src=$PWD
build=$(cd "$build" && pwd)
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
# -jobs writes its fuzz-N.log files in the current directory.
cd "$build/fuzz-logs"
for t in "${targets[@]}"; do
	mkdir -p "$build/fuzz-corpus/$t"
	echo "fuzz/run.sh: fuzz-$t, $limit"
	# shellcheck disable=SC2086
	"$build/fuzz/fuzz-$t" "$flag" -print_final_stats=1 ${FUZZ_FLAGS:-} \
	    -artifact_prefix="$build/fuzz-artifacts/$t-" \
	    "$build/fuzz-corpus/$t" "$src/fuzz/corpus-$t"
done
