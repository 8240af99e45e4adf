#!/usr/bin/env bash
# bench/store.sh [RUNS]   the durable store of detached jobs (issue 12)
#
# Builds the release build in build-bench/ and measures, RUNS times each
# (default 5), the systems taken in turn run by run, medians at the end:
#
#   1. Durable enqueue and drain, against beanstalkd's binlog. A client
#      puts detached 16-byte jobs with no worker connected, WIN (100)
#      awaiting their answer, and counts a job only when it is answered:
#      patchbay's ACCEPTED (sent once the job is committed; pbbench
#      bgack), beanstalkd's INSERTED (sent once it is in the binlog;
#      textbench beanstalkd bg). Then one worker of capacity 1 drains them
#      (as S6b of bench/run.sh), and for patchbay a worker of capacity 64
#      too, on a broker of its own. Twice: every commit fsync'd (patchbayd
#      --store-fsync yes, beanstalkd -f 0), SYNC_JOBS (default 10,000)
#      jobs, since a rate bound by fsyncs does not change with the count
#      and 50,000 would take most of the run; and never (--store-fsync no,
#      beanstalkd -F), JOBS (50,000). Over loopback TCP, a fresh store
#      file or binlog directory each run.
#   2. S2 (one client, 100 attached jobs in flight, one worker of capacity
#      1, over the Unix socket; then the same with a worker of capacity 64)
#      on a broker with --store and on one without, a fresh broker each
#      run, taking turns first. Besides the medians, the median of the
#      rounds' ratios: the two runs of a round share the machine's moment.
#   3. Restart with RESTART_JOBS (default 1,000,000) stored jobs: they are
#      put (pbbench bgack) with --store-fsync no, which only makes the fill
#      faster; the broker is stopped with SIGTERM (timed) and started
#      again RUNS times on that store (with the default, --store-fsync
#      yes): the wall time from exec to its ready file, the time it logs
#      for taking the jobs back, its RSS then, and the store's size. The
#      count it logs must be RESTART_JOBS, or the script stops.
#
# Stores and binlogs go to a directory made under $PB_STORE_DIR (default
# /var/tmp, a disk rather than tmpfs on most systems: fsync must reach a
# device to mean something); its filesystem is printed. For a quick check:
# PB_STORE_JOBS, PB_STORE_SYNC_JOBS, PB_STORE_WIN, PB_STORE_S2_JOBS
# (100,000) and PB_STORE_RESTART_JOBS. As root, installs Debian's
# beanstalkd when it is missing (without it part 1 is patchbay's alone).
# Everything binds to 127.0.0.1; every process started here is stopped and
# every file made here removed on exit, however it exits. About 5 minutes
# on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_help "$@"
R=${1:-5}
JOBS=${PB_STORE_JOBS:-50000}
SJOBS=${PB_STORE_SYNC_JOBS:-10000}
WIN=${PB_STORE_WIN:-100}
S2JOBS=${PB_STORE_S2_JOBS:-100000}
RJOBS=${PB_STORE_RESTART_JOBS:-1000000}
bench_positive RUNS "$R"
bench_positive PB_STORE_JOBS "$JOBS"
bench_positive PB_STORE_SYNC_JOBS "$SJOBS"
bench_positive PB_STORE_WIN "$WIN"
bench_positive PB_STORE_S2_JOBS "$S2JOBS"
bench_positive PB_STORE_RESTART_JOBS "$RJOBS"
bench_scratch store
# The stores live apart from W (under /tmp, which may be tmpfs): removed
# by the same exit trap.
SD=$(mktemp -d "${PB_STORE_DIR:-/var/tmp}/pb-store.XXXXXX")
trap 'bench_cleanup; rm -rf "$SD"' EXIT

bench_install beanstalkd
bench_build
PB=$B/bench/pbbench
TB=$B/bench/textbench
mkdir -p "$W/res"
BS=no
command -v beanstalkd >/dev/null && BS=yes

# forget PID: takes a process stopped already off the cleanup list, so
# that the exit trap never signals a pid the system may have reused.
forget() {
	local p keep=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# record SCEN SYS LINE: prints a run's line and keeps it for the medians.
record() {
	local out=${3:-"FAILED (see $W/clients.err)"}
	printf '%-6s %-12s %s\n' "$1" "$2" "$out"
	echo "$out" >>"$W/res/$1.$2"
}

# The count a client line reports as ok, or 0.
ok_of() {
	sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$1" | grep . || echo 0
}

# fail WHAT: the broker (or the peer) did not do what it must; says what
# and stops, leaving the evidence in the output.
fail() {
	echo "bench/store.sh: $*" >&2
	for f in "$W"/*.log "$W/clients.err"; do
		[ -s "$f" ] || continue
		echo "--- $f (last lines)" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}

# pb_durable SYS SYNC CAPACITY JOBS: one patchbay run of part 1 on a fresh
# broker and store.
pb_durable() {
	local sys=$1 sync=$2 cap=$3 jobs=$4 d out n
	d=$(mktemp -d "$SD/$sys.XXXXXX")
	start_broker -- --store "$d/store.db" --store-fsync "$sync" \
		--max-queue $((jobs + 1000)) --no-worker-wait 10m
	out=$(timeout 300 "$PB" bgack "$PB_TCP" durable "$jobs" 16 "$WIN" \
	    2>>"$W/clients.err" | tail -n 1) || true
	record enq "$sys" "$out"
	n=$(ok_of "$out")
	[ "$n" -eq "$jobs" ] || fail "$sys: $n of $jobs detached jobs ACCEPTED"
	out=$(timeout 300 "$PB" worker "$PB_TCP" durable "$n" "$cap" \
	    2>>"$W/clients.err" | tail -n 1) || true
	record drain "$sys" "$out"
	[[ $out == worker:* ]] || fail "$sys: the worker did not drain $n jobs"
	stop_pid "$PB_PID"
	forget "$PB_PID"
	rm -rf "$d"
}

# bs_durable SYS FLAG JOBS: the same for beanstalkd with a fresh binlog.
bs_durable() {
	local sys=$1 flag=$2 jobs=$3 d out n ep
	d=$(mktemp -d "$SD/$sys.XXXXXX")
	start_peer beanstalkd beanstalkd -l 127.0.0.1 -p @PORT@ -b "$d" "$flag" ||
		fail "beanstalkd did not start"
	ep=tcp:127.0.0.1:$PEER_PORT
	out=$(timeout 300 "$TB" beanstalkd bg "$ep" "$jobs" 16 "$WIN" \
	    2>>"$W/clients.err" | tail -n 1) || true
	record enq "$sys" "$out"
	n=$(ok_of "$out")
	[ "$n" -eq "$jobs" ] || fail "$sys: $n of $jobs puts INSERTED"
	out=$(timeout 300 "$TB" beanstalkd drain "$ep" "$n" \
	    2>>"$W/clients.err" | tail -n 1) || true
	record drain "$sys" "$out"
	[ "$(ok_of "$out")" -eq "$n" ] || fail "$sys: $n jobs put, not all drained"
	stop_pid "$PEER_PID"
	forget "$PEER_PID"
	rm -rf "$d"
}

# s2 SYS ARGS...: one S2 run with a worker of capacity 1, then one with
# a worker of capacity 64, on a fresh broker started with ARGS.
s2() {
	local sys=$1 wp out cap
	shift
	start_broker -- --max-queue 1000000 --no-worker-wait 10m "$@"
	for cap in 1 64; do
		"$PB" worker "$PB_UNIX" "s2c$cap" "$S2JOBS" "$cap" >/dev/null \
		    2>>"$W/clients.err" &
		wp=$!
		pids+=("$wp")
		sleep 0.3
		out=$(timeout 300 "$PB" pipe "$PB_UNIX" "s2c$cap" "$S2JOBS" 16 100 \
		    2>>"$W/clients.err" | tail -n 1) || true
		record "S2c$cap" "$sys" "$out"
		[ "$(ok_of "$out")" -eq "$S2JOBS" ] ||
			fail "S2 $sys capacity $cap: not every job answered OK"
		stop_pid "$wp"
		forget "$wp"
	done
	stop_pid "$PB_PID"
	forget "$PB_PID"
}

fs=$(findmnt -no FSTYPE,SOURCE -T "$SD" 2>/dev/null | tr -s ' ') ||
	fs=$(df -T "$SD" | awk 'NR == 2 { print $2, $1 }')
echo "runs=$R jobs=$JOBS sync_jobs=$SJOBS win=$WIN s2=$S2JOBS restart=$RJOBS cores=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "stores in $SD ($fs)${BS:+; beanstalkd: $BS}"

# 1. Durable enqueue and drain.
for _ in $(seq "$R"); do
	pb_durable pb-fsync yes 1 "$SJOBS"
	pb_durable pb64-fsync yes 64 "$SJOBS"
	if [ "$BS" = yes ]; then bs_durable bs-f0 -f0 "$SJOBS"; fi
	pb_durable pb-nofsync no 1 "$JOBS"
	pb_durable pb64-nofsync no 64 "$JOBS"
	if [ "$BS" = yes ]; then bs_durable bs-F -F "$JOBS"; fi
done

# 2. S2 with and without a store; which goes first alternates, so that
# neither always follows the other.
for r in $(seq "$R"); do
	if [ $((r % 2)) -eq 1 ]; then s2 nostore; fi
	s2 store --store "$SD/s2.db"
	rm -f "$SD"/s2.db*
	if [ $((r % 2)) -eq 0 ]; then s2 nostore; fi
done

# 3. Restart with RJOBS stored jobs.
d=$SD/restart
mkdir -p "$d"
start_broker -- --store "$d/store.db" --store-fsync no \
	--max-queue $((RJOBS + 1000)) --no-worker-wait 10m
out=$(timeout 600 "$PB" bgack "$PB_UNIX" restart "$RJOBS" 16 "$WIN" \
    2>>"$W/clients.err" | tail -n 1) || true
record fill pb-nofsync "$out"
n=$(ok_of "$out")
[ "$n" -eq "$RJOBS" ] || fail "fill: $n of $RJOBS detached jobs ACCEPTED"
echo "RSS with $RJOBS queued: $(rss_kib "$PB_PID") KiB" >"$W/res/fillrss"
cat "$W/res/fillrss"
t0=$EPOCHREALTIME
stop_pid "$PB_PID"
t1=$EPOCHREALTIME
forget "$PB_PID"
record stop pb "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "stop: ms=%.0f\n", (b - a) * 1000 }')"
for _ in $(seq "$R"); do
	: >"$W/restart.log"
	rm -f "$W/ready"
	t0=$EPOCHREALTIME
	"$B/broker/patchbayd" -l "unix:$W/pb.sock" --ready-file "$W/ready" \
		--log-level info --store "$d/store.db" \
		--max-queue $((RJOBS + 1000)) --no-worker-wait 10m \
		2>>"$W/restart.log" &
	rp=$!
	pids+=("$rp")
	# Polled every 5 ms: well below the seconds being measured.
	while [ ! -e "$W/ready" ]; do
		kill -0 "$rp" 2>/dev/null || fail "restart: patchbayd exited"
		sleep 0.005
	done
	t1=$EPOCHREALTIME
	rss=$(rss_kib "$rp")
	line=$(grep -m1 'jobs taken back' "$W/restart.log") ||
		fail "restart: no 'jobs taken back' line in its log"
	got=$(sed -n 's/.*: \([0-9]*\) jobs taken back.*/\1/p' <<<"$line")
	ms=$(sed -n 's/.* in \([0-9]*\) ms.*/\1/p' <<<"$line")
	[ "$got" = "$RJOBS" ] || fail "restart: $got jobs taken back, $RJOBS were stored: $line"
	size=$(stat -c %s "$d/store.db")
	record restart pb "$(awk -v a="$t0" -v b="$t1" -v ms="$ms" -v rss="$rss" -v sz="$size" -v n="$got" 'BEGIN {
		printf "restart: jobs=%d wall=%.0fms logged=%dms rss=%dKiB store=%d\n", n, (b - a) * 1000, ms, rss, sz }')"
	t0=$EPOCHREALTIME
	stop_pid "$rp"
	t1=$EPOCHREALTIME
	forget "$rp"
	record stop pb "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "stop: ms=%.0f\n", (b - a) * 1000 }')"
done
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$W/clients.err" ]; then
	echo "client errors:"; sort "$W/clients.err" | uniq -c | head -5
fi

echo
python3 - "$W/res" "$R" "$JOBS" "$SJOBS" "$RJOBS" "$fs" <<'PY'
import os, re, statistics, sys

res, runs, jobs, sjobs, rjobs, fs = sys.argv[1:7]
runs, jobs, sjobs, rjobs = int(runs), int(jobs), int(sjobs), int(rjobs)
vals = {}
for f in os.listdir(res):
    if '.' not in f:
        continue
    scen, sys_ = f.split('.', 1)
    for line in open(os.path.join(res, f)):
        vals.setdefault((scen, sys_), []).append(line.strip())

def med(scen, sys_, key='rate'):
    v = []
    for line in vals.get((scen, sys_), []):
        m = re.search(key + r'=([0-9.]+)', line)
        if m:
            v.append(float(m.group(1)))
    return statistics.median(v) if v else None

def runs_of(scen, sys_):
    return [re.search(r'rate=([0-9.]+)', l).group(1) if 'rate=' in l
            else 'FAILED' for l in vals.get((scen, sys_), [])]

def num(v):
    return '-' if v is None else f'{v:,.0f}'

def ratio(a, b):
    return '-' if not a or not b else f'{a / b:.2f}'

print('all runs (jobs/s):')
for (scen, sys_) in sorted(vals):
    if scen in ('enq', 'drain', 'S2c1', 'S2c64'):
        print(f'{scen} {sys_}: [{" ".join(runs_of(scen, sys_))}] '
              f'median={num(med(scen, sys_))}')
print()
print(f'Durable enqueue of detached 16-byte jobs ({sjobs:,} with fsync, '
      f'{jobs:,} without; store on {fs}), then one worker drains them; '
      f'jobs/s, median of {runs}:')
print()
print('| shape | patchbay | beanstalkd | patchbay/beanstalkd |')
print('| --- | --- | --- | --- |')
for sync, pb, bs, flags in (('fsync every commit', 'fsync', 'f0',
                             '`--store-fsync yes` / `-f 0`'),
                            ('no fsync', 'nofsync', 'F',
                             '`--store-fsync no` / `-F`')):
    for scen, what in (('enq', 'enqueue, acknowledged'),
                       ('drain', 'drain, worker capacity 1')):
        a, b = med(scen, 'pb-' + pb), med(scen, 'bs-' + bs)
        print(f'| {what}, {sync} ({flags}) | {num(a)} | {num(b)} | '
              f'{ratio(a, b)} |')
    a, b = med('drain', 'pb64-' + pb), med('drain', 'bs-' + bs)
    print(f'| drain, patchbay worker capacity 64, {sync} | {num(a)} | '
          f'{num(b)} (capacity 1) | {ratio(a, b)} |')
print()
print(f'S2 (1 client, 100 attached jobs in flight, 1 worker, unix socket), '
      f'jobs/s, median of {runs}:')
print()
print('| worker capacity | no store | `--store FILE` | ratio of the medians '
      '| median of the rounds\' ratios |')
print('| --- | --- | --- | --- | --- |')
for cap in ('1', '64'):
    scen = 'S2c' + cap
    a, b = med(scen, 'nostore'), med(scen, 'store')
    ra = [float(x) for x in runs_of(scen, 'nostore') if x != 'FAILED']
    rb = [float(x) for x in runs_of(scen, 'store') if x != 'FAILED']
    pr = [y / x for x, y in zip(ra, rb) if x]
    print(f'| {cap} | {num(a)} | {num(b)} | {ratio(b, a)} | '
          f'{statistics.median(pr):.2f} |' if pr else
          f'| {cap} | {num(a)} | {num(b)} | {ratio(b, a)} | - |')
print()
fillrate = med('fill', 'pb-nofsync')
fillrss = None
try:
    fillrss = float(open(os.path.join(res, 'fillrss')).read().split()[-2])
except (OSError, ValueError, IndexError):
    pass
w, lg = med('restart', 'pb', 'wall'), med('restart', 'pb', 'logged')
rss, size = med('restart', 'pb', 'rss'), med('restart', 'pb', 'store')
print(f'Restart with {rjobs:,} stored jobs (median of {runs} restarts):')
print()
print('| measure | value |')
print('| --- | --- |')
print(f'| fill, acknowledged, `--store-fsync no` | {num(fillrate)} jobs/s |')
print(f'| exec to ready file | {num(w)} ms |')
print(f'| logged "jobs taken back ... in T ms" | {num(lg)} ms |')
print(f'| store file | {size / 1e6:,.1f} MB ({size / rjobs:.0f} B a job) |'
      if size else '| store file | - |')
print(f'| RSS after the restart | {num(rss)} KiB |')
print(f'| stop (SIGTERM to exit), {runs + 1} stops | '
      f'{num(med("stop", "pb", "ms"))} ms |')
if fillrss:
    print(f'| RSS of the broker that took them (before the stop) | '
          f'{num(fillrss)} KiB |')
PY
