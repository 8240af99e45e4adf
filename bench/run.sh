#!/usr/bin/env bash
# bench/run.sh [RUNS]          scenarios S1-S6: patchbay and its peers, side by side
# bench/run.sh --instr [...]   instructions per job (bench/instr.sh)
# bench/run.sh --memory [...]  memory per queued job and per idle connection
#                              (bench/memory.sh)
#
# Builds a release build in build-bench/, starts patchbayd, gearmand -t 1,
# beanstalkd and nats-server, each on a loopback port free at run time, and
# runs every scenario RUNS times (default 5), taking the systems in turn run
# by run so that a noisy moment hits all of them alike. The drivers are
# bench/'s own: pbbench (libpatchbay), gearbench (libgearman) and textbench
# (beanstalkd's and NATS's text protocols). patchbay runs over TCP and over
# its Unix socket, with workers of capacity 1 (like the peers' workers) and
# of capacity 64. Prints every run, the medians, S2's latency percentiles,
# each server's RSS, and markdown tables of the ratios.
#
# As root, installs the peers' Debian packages when missing
# (gearman-job-server libgearman-dev beanstalkd nats-server); a peer that
# is not installed is left out. Everything binds to 127.0.0.1 and every
# process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
--instr) shift; exec bash bench/instr.sh "$@" ;;
--memory) shift; exec bash bench/memory.sh "$@" ;;
esac
# shellcheck source=bench/common.sh
. bench/common.sh
bench_help "$@"
R=${1:-5}
bench_positive RUNS "$R"
bench_scratch bench

bench_install gearman-job-server libgearman-dev beanstalkd nats-server
bench_build
PB=$B/bench/pbbench
GB=$B/bench/gearbench
TB=$B/bench/textbench
mkdir -p "$W/res"

start_broker -- --max-queue 1000000 --no-worker-wait 10m --result-ttl 0
systems=(pb pbu pb64 pbu64)
GM= BS= NATS=
if command -v gearmand >/dev/null && [ -x "$GB" ] &&
    start_peer gearmand gearmand -L 127.0.0.1 -p @PORT@ -t 1 -l none -P "$W/gearmand.pid"; then
	GM=tcp:127.0.0.1:$PEER_PORT GM_PID=$PEER_PID
	systems+=(gm)
fi
if command -v beanstalkd >/dev/null &&
    start_peer beanstalkd beanstalkd -l 127.0.0.1 -p @PORT@; then
	BS=tcp:127.0.0.1:$PEER_PORT BS_PID=$PEER_PID
	systems+=(bs)
fi
if command -v nats-server >/dev/null &&
    start_peer nats-server nats-server -a 127.0.0.1 -p @PORT@; then
	NATS=tcp:127.0.0.1:$PEER_PORT NATS_PID=$PEER_PID
	systems+=(nats)
fi

# has SYS: whether that system is running.
has() { [[ " ${systems[*]} " == *" $1 "* ]]; }

# client SYS MODE ARGS...: one client of system SYS (patchbay: pb over TCP,
# pbu over the Unix socket, pb64/pbu64 served by capacity-64 workers).
client() {
	local sys=$1 mode=$2
	shift 2
	case $sys in
	pb) timeout 300 "$PB" "$mode" "$PB_TCP" echo "$@" ;;
	pbu) timeout 300 "$PB" "$mode" "$PB_UNIX" uecho "$@" ;;
	pb64) timeout 300 "$PB" "$mode" "$PB_TCP" echo64 "$@" ;;
	pbu64) timeout 300 "$PB" "$mode" "$PB_UNIX" uecho64 "$@" ;;
	gm) timeout 300 "$GB" "$mode" "$GM" echo "$@" ;;
	bs) timeout 300 "$TB" beanstalkd "$mode" "$BS" "$@" ;;
	nats) timeout 300 "$TB" nats "$mode" "$NATS" "$@" ;;
	esac
}

# aggregate SYS: S5, four sequential clients at once; prints their sum.
aggregate() {
	local c s e cp=() ok
	rm -f "$W"/s5.*
	s=$(date +%s.%N)
	for c in 1 2 3 4; do client "$1" seq 10000 16 >"$W/s5.$c" 2>/dev/null & cp+=($!); done
	wait "${cp[@]}" || true
	e=$(date +%s.%N)
	ok=$(cat "$W"/s5.* | sed -n 's/.* ok=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
	awk -v ok="$ok" -v s="$s" -v e="$e" 'BEGIN {
		printf "S5: n=40000 ok=%d payload=16 time=%.3fs rate=%.0f jobs/s\n", ok, e - s, ok / (e - s) }'
}

# one SCEN SYS CMD...: runs CMD once; prints and records its last line.
one() {
	local scen=$1 sys=$2 out
	shift 2
	out=$("$@" 2>>"$W/clients.err" | tail -n 1) || true
	[ -n "$out" ] || out="FAILED (see stderr)"
	printf '%-4s %-6s %s\n' "$scen" "$sys" "$out"
	echo "$out" >>"$W/res/$scen.$sys"
}

# startw COUNT: COUNT echo workers for every system.
WP=()
startw() {
	local _
	for _ in $(seq "$1"); do
		"$PB" worker "$PB_TCP" echo 0 1 >/dev/null 2>&1 & WP+=($!)
		"$PB" worker "$PB_UNIX" uecho 0 1 >/dev/null 2>&1 & WP+=($!)
		"$PB" worker "$PB_TCP" echo64 0 64 >/dev/null 2>&1 & WP+=($!)
		"$PB" worker "$PB_UNIX" uecho64 0 64 >/dev/null 2>&1 & WP+=($!)
		if has gm; then "$GB" worker "$GM" echo >/dev/null 2>&1 & WP+=($!); fi
		if has bs; then "$TB" beanstalkd worker "$BS" >/dev/null 2>&1 & WP+=($!); fi
		if has nats; then "$TB" nats worker "$NATS" >/dev/null 2>&1 & WP+=($!); fi
	done
	pids+=("${WP[@]}")
	sleep 0.5
}
stopw() {
	kill "${WP[@]}" 2>/dev/null || true
	wait "${WP[@]}" 2>/dev/null || true
	WP=()
}

# scenario SCEN SYSTEMS MODE ARGS...: RUNS rounds over the systems given.
scenario() {
	local scen=$1 syss=$2 r s
	shift 2
	for r in $(seq "$R"); do
		for s in $syss; do
			has "$s" || continue
			if [ "$1" = aggregate ]; then
				one "$scen" "$s" aggregate "$s"
			else
				one "$scen" "$s" client "$s" "$@"
			fi
		done
	done
}

echo "runs=$R systems=${systems[*]} loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "patchbay $PB_TCP $PB_UNIX${GM:+ | gearmand -t 1 $GM}${BS:+ | beanstalkd $BS}${NATS:+ | nats-server $NATS}"
startw 1
scenario S1 "pb gm bs nats" seq 20000 16
scenario S2 "pb pbu pb64 pbu64 gm bs nats" pipe 100000 16 100
scenario S3 "pb pbu pb64 pbu64 gm bs nats" pipe 50000 4096 100
stopw
startw 2
scenario S4 "pb pbu pb64 pbu64 gm bs nats" pipe 100000 16 100
scenario S5 "pb pbu gm bs nats" aggregate
stopw
for _ in $(seq "$R"); do
	one S6a pb timeout 300 "$PB" bg "$PB_TCP" bgecho 50000 16
	one S6b pb timeout 300 "$PB" worker "$PB_TCP" bgecho 50000 1
	# The same drained by a worker of capacity 64.
	one S6a pb64 timeout 300 "$PB" bg "$PB_TCP" bgecho64 50000 16
	one S6b pb64 timeout 300 "$PB" worker "$PB_TCP" bgecho64 50000 64
	if has gm; then
		one S6a gm timeout 300 "$GB" bg "$GM" bgecho 50000 16
		one S6b gm timeout 300 "$GB" worker "$GM" bgecho 50000
	fi
	if has bs; then
		one S6a bs timeout 300 "$TB" beanstalkd bg "$BS" 50000 16 100
		one S6b bs timeout 300 "$TB" beanstalkd drain "$BS" 50000
	fi
done
echo "RSS pb $(rss_kib "$PB_PID")" >"$W/res/rss"
if has gm; then echo "RSS gm $(rss_kib "$GM_PID")" >>"$W/res/rss"; fi
if has bs; then echo "RSS bs $(rss_kib "$BS_PID")" >>"$W/res/rss"; fi
if has nats; then echo "RSS nats $(rss_kib "$NATS_PID")" >>"$W/res/rss"; fi
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
python3 - "$W/res" "$R" <<'PY'
import os, re, statistics, sys

res, runs = sys.argv[1], sys.argv[2]
names = {
    'pb': 'patchbay TCP, worker capacity 1',
    'pbu': 'patchbay unix, worker capacity 1',
    'pb64': 'patchbay TCP, worker capacity 64',
    'pbu64': 'patchbay unix, worker capacity 64',
    'gm': 'gearmand -t 1',
    'bs': 'beanstalkd',
    'nats': 'NATS',
}
shapes = [
    ('S1', 'S1 seq 1c/1w 16B'),
    ('S2', 'S2 pipe(win100) 1c/1w 16B'),
    ('S3', 'S3 pipe(win100) 1c/1w 4KiB'),
    ('S4', 'S4 pipe(win100) 1c/2w 16B'),
    ('S5', 'S5 seq 4c/2w 16B aggregate'),
    ('S6a', 'S6a background submit (no worker) 16B'),
    ('S6b', 'S6b drain queued bg jobs by 1 worker'),
]
rate, lat, rss = {}, {}, {}
for f in os.listdir(res):
    if f == 'rss':
        for l in open(os.path.join(res, f)):
            _, sys_, kib = l.split()
            rss[sys_] = float(kib)
        continue
    scen, sys_ = f.split('.')
    for l in open(os.path.join(res, f)):
        m = re.search(r'rate=(\d+)', l)
        rate.setdefault((scen, sys_), []).append(int(m.group(1)) if m else 0)
        m = re.search(r'p50=(\d+)us p99=(\d+)us p99\.9=(\d+)us', l)
        if m:
            lat.setdefault((scen, sys_), []).append([int(x) for x in m.groups()])

def med(scen, sys_):
    v = rate.get((scen, sys_))
    return statistics.median(v) if v else None

print('medians (jobs/s):')
for sys_, name in names.items():
    if not any(k[1] == sys_ for k in rate):
        continue
    print(f'{name} runs={runs}')
    for scen, label in shapes:
        v = rate.get((scen, sys_))
        if v:
            print(f"{label}: runs=[{' '.join(map(str, v))}] median={med(scen, sys_):.0f}")
    if sys_ in rss:
        print(f'server RSS after: {rss[sys_]:.0f} KiB')

def cell(v, base):
    if v is None:
        return '-'
    if not base or not v:
        return f'{v:,.0f}'
    return f'{v:,.0f} ({base / v:.2f}x)'

peers = [p for p in ('gm', 'bs', 'nats') if any(k[1] == p for k in rate)]
print()
print('patchbay (TCP, worker capacity 1) / peer; above 1: patchbay faster;')
print('for RSS, below 1: patchbay smaller.')
print()
print('| scenario | patchbay | ' + ' | '.join(names[p] for p in peers) + ' |')
print('|---|---|' + '---|' * len(peers))
for scen, _ in shapes:
    pb = med(scen, 'pb')
    if pb is None:
        continue
    print(f'| {scen} | {pb:,.0f} | ' +
          ' | '.join(cell(med(scen, p), pb) for p in peers) + ' |')
if 'pb' in rss:
    print(f"| server RSS after (KiB) | {rss['pb']:,.0f} | " +
          ' | '.join(cell(rss.get(p), rss['pb']) for p in peers) + ' |')

print()
print('patchbay by transport and worker capacity (jobs/s; ratio: this / TCP capacity 1):')
print()
print('| scenario | TCP, capacity 1 | unix, capacity 1 | TCP, capacity 64 | unix, capacity 64 |')
print('|---|---|---|---|---|')
for scen in ('S2', 'S3', 'S4', 'S5', 'S6b'):
    base = med(scen, 'pb')
    if base is None:
        continue
    cells = []
    for s in ('pbu', 'pb64', 'pbu64'):
        v = med(scen, s)
        cells.append('-' if v is None else f'{v:,.0f} ({v / base:.2f}x)' if base else f'{v:,.0f}')
    print(f'| {scen} | {base:,.0f} | ' + ' | '.join(cells) + ' |')

print()
print('S2 latency, submit to result (microseconds; median over runs of each percentile):')
print()
print('| system | p50 | p99 | p99.9 |')
print('|---|---|---|---|')
for sys_, name in names.items():
    v = lat.get(('S2', sys_))
    if not v:
        continue
    p = [statistics.median(x[i] for x in v) for i in range(3)]
    print(f'| {name} | {p[0]:,.0f} | {p[1]:,.0f} | {p[2]:,.0f} |')
PY
