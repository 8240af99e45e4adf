#!/usr/bin/env bash
# bench/instr.sh [N1 N2]  (also: bench/run.sh --instr [N1 N2])
#
# Instructions per job of patchbayd, of libpatchbay's client and of its
# worker, in the S2 shape: one client keeping 100 jobs of 16 bytes in
# flight, one echo worker of capacity 1 and then of capacity 64, over
# loopback TCP. Each of the three processes runs under valgrind
# --tool=callgrind, once with N1 jobs and once with N2 (default 20000 and
# 40000); the difference of their instruction counts divided by N2 - N1 is
# the cost of one job, start-up and shutdown cancelling out. Counts are
# user-space instructions only (the kernel's share of each syscall is not
# in them), and the client and worker counts include pbbench's own few
# lines per job (a clock read, a counter).
#
# Prints the table, then the ten functions that cost patchbayd the most in
# the N2 run (callgrind_annotate, self cost). The broker is the release
# build build-bench/broker/patchbayd; it is stopped with SIGTERM so that
# callgrind writes its profile. Takes a few minutes (callgrind runs the
# code ~50 times slower). perf stat -e instructions would be quicker, but
# needs a PMU, which this kind of VM does not expose; callgrind works
# everywhere. Needs valgrind (installed here when missing, as root).
# PB_BENCH_BUILD=DIR measures the build in DIR instead (another commit's
# release build, for a before-and-after), as it is, without building.
# PB_BENCH_HTTP=1 runs the broker with its HTTP endpoint on and a scraper
# that GETs /metrics and /status.json once a second (wall clock) for as
# long as the broker runs: the cost of being monitored. Under callgrind
# the broker is some 50 times slower than natively, so the same scrapes
# fall on some 50 times fewer jobs: the figure is an upper bound.
# PB_BENCH_TLS=1 runs the client and the worker over a tls: endpoint (a CA
# and certificate made with the openssl CLI, tests/make-certs.sh): the
# cost of TLS, OpenSSL's instructions included, set against a run without.
# PB_BENCH_STORE=1 runs the broker with a store (--store, a fresh file each
# run): the attached jobs of S2 should cost what they cost without one.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-20000}
N2=${2:-40000}
# shellcheck source=bench/common.sh
. bench/common.sh
bench_scratch instr

if [ "$N2" -le "$N1" ]; then
	echo "instr.sh: N2 ($N2) must be larger than N1 ($N1)" >&2
	exit 2
fi
command -v valgrind >/dev/null || bench_install valgrind
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind" >&2; exit 1; }
bench_build
PB=$B/bench/pbbench
CG=(valgrind --tool=callgrind)

# scrape OUT: GETs /metrics and /status.json of the broker $PB_PID once a
# second while it runs, in the background; counts the scrapes in OUT.scrapes.
scrape() {
	local ep
	ep=$(grep '^http:' "$W/ready" | sed 's/^http://')
	(
		n=0
		while kill -0 "$PB_PID" 2>/dev/null; do
			python3 - "$ep" <<'PY' && n=$((n + 1))
import sys, urllib.request
for path in ("/metrics", "/status.json"):
    urllib.request.urlopen("http://" + sys.argv[1] + path, timeout=5).read()
PY
			echo "$n" >"$1.scrapes"
			sleep 1
		done
	) >/dev/null 2>&1 &
}

# Total instructions of a callgrind profile.
total() {
	awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# per_job A B: (B - A) / (N2 - N1), with thousands separators.
per_job() {
	python3 -c 'import sys; a, b, d = map(int, sys.argv[1:]); print(f"{(b - a) / d:,.0f}")' "$1" "$2" $((N2 - N1))
}

# measure CAP N: one S2 run with everything under callgrind; records the
# three totals in $W/CAP.N.
measure() {
	local cap=$1 n=$2 wp out
	out=$W/$cap.$n
	local http=() tls=() store=() ep
	if [ "${PB_BENCH_HTTP:-0}" = 1 ]; then
		http=(--http tcp:127.0.0.1:0)
	fi
	if [ "${PB_BENCH_TLS:-0}" = 1 ]; then
		[ -f "$W/certs/server.crt" ] || { mkdir -p "$W/certs" &&
		    bash tests/make-certs.sh "$W/certs"; }
		export PATCHBAY_TLS_CA=$W/certs/ca.crt
		tls=(-l tls:127.0.0.1:0 --tls-cert "$W/certs/server.crt"
		    --tls-key "$W/certs/server.key")
	fi
	if [ "${PB_BENCH_STORE:-0}" = 1 ]; then
		store=(--store "$out.store.db")
	fi
	start_broker "${CG[@]}" --callgrind-out-file="$out.broker" -- --max-queue 1000000 --no-worker-wait 600000 "${http[@]}" "${tls[@]}" "${store[@]}"
	ep=$PB_TCP
	if [ "${PB_BENCH_TLS:-0}" = 1 ]; then
		ep=$(grep '^tls:' "$W/ready")
	fi
	if [ "${PB_BENCH_HTTP:-0}" = 1 ]; then
		scrape "$out"
	fi
	"${CG[@]}" --callgrind-out-file="$out.worker" "$PB" worker "$ep" echo "$n" "$cap" >"$out.wlog" 2>"$out.werr" &
	wp=$!
	pids+=("$wp")
	# Let the worker register; jobs submitted before would only queue,
	# and in both runs alike.
	sleep 2
	"${CG[@]}" --callgrind-out-file="$out.client" "$PB" pipe "$ep" echo "$n" 16 100 >"$out.clog" 2>"$out.cerr" || {
		echo "client failed:" >&2
		cat "$out.clog" "$out.cerr" >&2
		exit 1
	}
	wait "$wp" || true
	stop_pid "$PB_PID"
	printf 'capacity %-2s N=%-6s %s | broker %s client %s worker %s\n' "$cap" "$n" \
		"$(cat "$out.clog")" "$(total "$out.broker")" "$(total "$out.client")" \
		"$(total "$out.worker")"
	if [ -f "$out.scrapes" ]; then
		echo "  ($(cat "$out.scrapes") scrapes of /metrics and /status.json)"
	fi
}

echo "runs (instruction totals, under callgrind; rates are callgrind's, not real):"
for cap in 1 64; do
	measure "$cap" "$N1"
	measure "$cap" "$N2"
done

echo
echo "instructions per job, S2 shape (100 in flight, 16 B, loopback $([ "${PB_BENCH_TLS:-0}" = 1 ] && echo TLS || echo TCP)):"
echo "(I(N=$N2) - I(N=$N1)) / $((N2 - N1)), user space only"
echo
declare -A sum
echo "| process | worker capacity 1 | worker capacity 64 |"
echo "|---|---|---|"
for who in broker client worker; do
	case $who in
	broker) label="broker (patchbayd)" ;;
	client) label="client (pbbench pipe, libpatchbay)" ;;
	worker) label="worker (pbbench worker, libpatchbay)" ;;
	esac
	row="| $label |"
	for cap in 1 64; do
		a=$(total "$W/$cap.$N1.$who")
		b=$(total "$W/$cap.$N2.$who")
		sum[$cap]=$(( ${sum[$cap]:-0} + b - a ))
		row="$row $(per_job "$a" "$b") |"
	done
	echo "$row"
done
echo "| all three | $(per_job 0 "${sum[1]}") | $(per_job 0 "${sum[64]}") |"

for cap in 1 64; do
	echo
	echo "patchbayd's top 10 functions, capacity $cap, N=$N2 (self instructions, share, per job):"
	echo
	callgrind_annotate --inclusive=no "$W/$cap.$N2.broker" 2>/dev/null |
	    python3 -c '
import re, sys
n = int(sys.argv[1])
rows = []
for l in sys.stdin:
    m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S+)(?:\s+\[(.*)\])?$", l)
    if not m or "PROGRAM TOTALS" in l:
        continue
    ir, pct, fn, obj = m.groups()
    fn = fn.split(":", 1)[1] if ":" in fn else fn
    obj = obj.rsplit("/", 1)[-1] if obj else ""
    rows.append((int(ir.replace(",", "")), pct, fn, obj))
print("| function | object | instructions | share | per job |")
print("|---|---|---|---|---|")
for ir, pct, fn, obj in rows[:10]:
    print(f"| {fn} | {obj} | {ir:,} | {pct}% | {ir / n:,.0f} |")
' "$N2"
done
