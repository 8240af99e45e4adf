#!/usr/bin/env bash
# bench/batch.sh [RUNS] : jobs from a shell, one per input line.
#
# Times, RUNS times each (default 5) and taking the systems in turn:
#   - 10,000 lines through `patchbay run echo --lines` to a libpatchbay
#     echo worker of capacity 64 (pbbench worker), results printed in order;
#   - the same lines submitted detached (`--lines --detach`) with no worker;
#   - gearman's own command line submitting them as background jobs,
#     `gearman -n -b -f fn` (Debian gearman-tools), also with no worker;
#   - for reference, 500 jobs from a shell loop of `patchbay run` (one
#     process each).
# Prints every run, the medians and the ratio of the detached batches.
# Everything binds to 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_help "$@"
R=${1:-5}
bench_positive RUNS "$R"
bench_scratch batch

bench_install gearman-job-server gearman-tools
bench_build
PB=$B/clients/patchbay
N=10000
seq $N > "$W/lines"

# Seconds that a command takes, wall clock, to the millisecond.
seconds() {
	local s e
	s=$(date +%s%N)
	"$@" > /dev/null
	e=$(date +%s%N)
	awk -v d=$((e - s)) 'BEGIN { printf "%.3f\n", d / 1e9 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

start_broker -- --max-queue 10000000 --no-worker-wait 1h
"$B/bench/pbbench" worker "$PB_UNIX" echo 0 64 >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
have_gearman=false
if command -v gearmand >/dev/null && command -v gearman >/dev/null; then
	start_peer gearmand gearmand -t 1 -L 127.0.0.1 -p @PORT@ \
	    --log-file none && have_gearman=true
	GPORT=${PEER_PORT:-}
fi

lines=() detach=() gear=() loop=()
for r in $(seq "$R"); do
	lines+=("$(seconds sh -c "'$PB' run echo --lines -b '$PB_UNIX' < '$W/lines'")")
	detach+=("$(seconds sh -c "'$PB' run nobody$r --lines --detach -b '$PB_UNIX' < '$W/lines'")")
	if $have_gearman; then
		gear+=("$(seconds sh -c "gearman -h 127.0.0.1 -p $GPORT -n -b -f nobody$r < '$W/lines'")")
	fi
	loop+=("$(seconds sh -c "for i in \$(seq 500); do '$PB' run echo \$i -b '$PB_UNIX'; done")")
	echo "run $r: lines ${lines[-1]} s, detached ${detach[-1]} s${gear:+, gearman -n -b ${gear[-1]} s}, shell loop of 500 ${loop[-1]} s"
done
ml=$(printf '%s\n' "${lines[@]}" | median)
md=$(printf '%s\n' "${detach[@]}" | median)
mo=$(printf '%s\n' "${loop[@]}" | median)
echo
echo "| what ($N lines unless stated) | median wall time |"
echo "| --- | --- |"
echo "| \`patchbay run echo --lines\`, capacity-64 worker | $ml s |"
echo "| \`patchbay run FN --lines --detach\`, no worker | $md s |"
if $have_gearman; then
	mg=$(printf '%s\n' "${gear[@]}" | median)
	echo "| \`gearman -n -b -f FN\`, no worker | $mg s ($(awk -v g="$mg" -v d="$md" 'BEGIN { printf "%.1f", g / d }')x patchbay's detached batch) |"
fi
echo "| 500 jobs, a shell loop of \`patchbay run\` | $mo s ($(awk -v t="$mo" 'BEGIN { printf "%.2f", t * 1000 / 500 }') ms a job) |"
