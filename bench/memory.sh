#!/usr/bin/env bash
# bench/memory.sh [JOBS [CONNS]]  (also: bench/run.sh --memory [JOBS [CONNS]])
#
# What patchbayd's memory costs, read as its resident set size (VmRSS of
# /proc/PID/status) around three events, on the release build:
#
#   - queueing: RSS before and after JOBS (default 200,000) detached 16-byte
#     jobs are submitted with no worker connected; the difference divided
#     by JOBS is the broker's bytes per queued job;
#   - draining: a worker of capacity 64 runs them all; RSS is sampled every
#     0.5 s for 5 s afterwards (does the memory go back?), and once more
#     after a second burst of JOBS, to see whether it is reused;
#   - idle connections: on a fresh broker, CONNS (default 10,000) clients
#     connect, say HELLO and stay silent; the RSS difference divided by the
#     number that got in is the broker's bytes per idle connection.
#
# The file-descriptor limit is raised to the hard limit first, for the
# broker and for pbbench idle alike; when that (or anything else) stops the
# connections short, the count reached and the reason are printed. The
# broker runs with --heartbeat 1h so that the silent clients are not
# pinged and dropped while being counted. The queue's broker runs with
# --result-ttl 0: what the queue costs and gives back, without the
# outcomes a broker keeps for STATUS (which PB_BENCH_RESULTS=1 keeps, at
# their defaults, to measure them too). Everything binds to 127.0.0.1
# and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-200000}
CONNS=${2:-10000}
# shellcheck source=bench/common.sh
. bench/common.sh
bench_scratch memory

bench_build
PB=$B/bench/pbbench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)

keep=(--result-ttl 0)
[ "${PB_BENCH_RESULTS:-0}" = 1 ] && keep=()
start_broker -- --max-queue $((JOBS * 2 + 1000)) --no-worker-wait 1h --heartbeat 1h \
	"${keep[@]}"
sleep 0.5

# Prints n/d with thousands separators (d > 0).
ratio() {
	python3 -c 'import sys; n, d = map(float, sys.argv[1:]); print(f"{n / d:,.0f}")' "$1" "$2"
}
# Prints a number with thousands separators.
num() {
	python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"
}

echo "patchbayd $PB_TCP, fd limit $FDS, jobs $JOBS, connections $CONNS"
rss0=$(rss_kib "$PB_PID")
"$PB" bg "$PB_TCP" mem "$JOBS" 16
rss1=$(rss_kib "$PB_PID")
"$PB" worker "$PB_TCP" mem "$JOBS" 64
samples=()
for _ in $(seq 10); do
	sleep 0.5
	samples+=("$(rss_kib "$PB_PID")")
done
"$PB" bg "$PB_TCP" mem "$JOBS" 16
rss2=$(rss_kib "$PB_PID")
"$PB" worker "$PB_TCP" mem "$JOBS" 64
sleep 1.5
rss3=$(rss_kib "$PB_PID")

# A fresh broker for the connections, so that they cannot hide in heap
# the jobs left free.
stop_pid "$PB_PID"
start_broker -- --heartbeat 1h
sleep 0.5
rss6=$(rss_kib "$PB_PID")
"$PB" idle "$PB_TCP" "$CONNS" >"$W/idle.out" 2>&1 &
ip=$!
pids+=("$ip")
for _ in $(seq 1200); do
	grep -q '^idle:' "$W/idle.out" && break
	kill -0 "$ip" 2>/dev/null || break
	sleep 0.1
done
sleep 1
idle=$(cat "$W/idle.out")
held=$(sed -n 's/^idle: connected=\([0-9]*\).*/\1/p' "$W/idle.out")
held=${held:-0}
rss4=$(rss_kib "$PB_PID")
echo "$idle"
stop_pid "$ip"
closed=()
for _ in $(seq 6); do
	sleep 0.5
	closed+=("$(rss_kib "$PB_PID")")
done

echo
echo "| measure | value |"
echo "|---|---|"
echo "| RSS at start | $(num "$rss0") KiB |"
echo "| RSS with $(num "$JOBS") queued 16-byte jobs | $(num "$rss1") KiB |"
echo "| bytes per queued job | $(ratio $(((rss1 - rss0) * 1024)) "$JOBS") |"
echo "| RSS after draining, every 0.5 s for 5 s (KiB) | ${samples[*]} |"
echo "| RSS with a second burst of $(num "$JOBS") queued | $(num "$rss2") KiB |"
echo "| RSS 1.5 s after that drained | $(num "$rss3") KiB |"
if [ "$held" -gt 0 ]; then
	echo "| idle connections held | $(num "$held") of $(num "$CONNS") asked (fd limit $FDS) |"
	echo "| RSS of a fresh broker | $(num "$rss6") KiB |"
	echo "| RSS with them | $(num "$rss4") KiB |"
	echo "| bytes per idle connection | $(ratio $(((rss4 - rss6) * 1024)) "$held") |"
	echo "| RSS after they closed, every 0.5 s for 3 s (KiB) | ${closed[*]} |"
else
	echo "| idle connections held | none: $idle |"
fi
if [ "$held" -lt "$CONNS" ]; then
	echo
	echo "note: only $held of $CONNS connections were made ($idle; fd limit $FDS)."
fi
