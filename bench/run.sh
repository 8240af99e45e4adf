#!/usr/bin/env bash
# bench/run.sh [RUNS] : runs scenarios S1-S6 against patchbayd and, in the
# same run, against the peers (gearmand -t 1, beanstalkd, NATS) with the
# reference programs in ../shared/bench/peers. Prints every run, the
# medians, server RSS, and patchbay/peer ratios. Everything binds to
# 127.0.0.1 only; every process started here is stopped on exit.
#
# Needs: the build deps (tests/deps.sh) and, for the peers, the Debian
# packages gearman-job-server libgearman-dev beanstalkd nats-server bc
# (installed here when missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-5}
ROOT=$PWD
PEERS=${PEERS_DIR:-$ROOT/../shared/bench/peers}
W=$(mktemp -d /tmp/pb-bench.XXXXXX)
export PEERS_WORK=$W/peers
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
	need=()
	for p in gearman-job-server libgearman-dev beanstalkd nats-server bc; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
	done
	if [ ${#need[@]} -gt 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
fi

B=$ROOT/build-bench
[ -f "$B/build.ninja" ] || meson setup "$B" --buildtype=release -Db_ndebug=true -Dtests=disabled >/dev/null
ninja -C "$B" >/dev/null
PB=$B/bench/pbbench

median() { sort -n | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
rate() { sed -n 's/.*rate=\([0-9]*\).*/\1/p'; }

"$B/broker/patchbayd" -l tcp:127.0.0.1:0 -l "unix:$W/pb.sock" --log-level warn \
	--ready-file "$W/ready" --max-queue 1000000 --no-worker-wait 600000 2>"$W/broker.log" &
SP=$!; pids+=($SP)
for _ in $(seq 200); do [ -f "$W/ready" ] && break; sleep 0.05; done
EP=$(grep '^tcp:' "$W/ready")

WP=()
startw() { for _ in $(seq 1 "$1"); do "$PB" worker "$EP" echo 0 "${2:-1}" >/dev/null 2>&1 & WP+=($!); pids+=($!); done; sleep 0.3; }
stopw() { for p in "${WP[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${WP[@]}" 2>/dev/null || true; WP=(); }
line() { echo "$1: runs=[$2] median=$(echo $2 | tr ' ' '\n' | median)"; }

{
echo "patchbay runs=$R loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
startw 1
v=$(for _ in $(seq "$R"); do "$PB" seq "$EP" echo 20000 16 | rate; done | tr '\n' ' '); line "S1 seq 1c/1w 16B" "$v"
v=$(for _ in $(seq "$R"); do "$PB" pipe "$EP" echo 100000 16 100 | rate; done | tr '\n' ' '); line "S2 pipe(win100) 1c/1w 16B" "$v"
v=$(for _ in $(seq "$R"); do "$PB" pipe "$EP" echo 50000 4096 100 | rate; done | tr '\n' ' '); line "S3 pipe(win100) 1c/1w 4KiB" "$v"
stopw; startw 2
v=$(for _ in $(seq "$R"); do "$PB" pipe "$EP" echo 100000 16 100 | rate; done | tr '\n' ' '); line "S4 pipe(win100) 1c/2w 16B" "$v"
v=$(for _ in $(seq "$R"); do
	s=$(date +%s.%N); CP=()
	for _ in 1 2 3 4; do "$PB" seq "$EP" echo 10000 16 >/dev/null & CP+=($!); done
	wait "${CP[@]}"; e=$(date +%s.%N); echo "40000/($e-$s)" | bc -l | cut -d. -f1
done | tr '\n' ' '); line "S5 seq 4c/2w 16B aggregate" "$v"
stopw
vs=""; vd=""
for _ in $(seq "$R"); do
	vs="$vs $("$PB" bg "$EP" bgecho 50000 16 | rate)"
	vd="$vd $("$PB" worker "$EP" bgecho 50000 1 | rate)"
done
line "S6a background submit (no worker) 16B" "$vs"
line "S6b drain queued bg jobs by 1 worker" "$vd"
startw 1 64
v=$(for _ in $(seq "$R"); do "$PB" pipe "$EP" echo 100000 16 100 | rate; done | tr '\n' ' '); line "S2c pipe(win100) 1c/1w(capacity 64) 16B" "$v"
stopw
echo "patchbayd RSS after: $(ps -o rss= -p $SP) KiB"
} | tee "$W/pb.txt"

if command -v gearmand >/dev/null && [ -d "$PEERS" ]; then
	bash "$PEERS/run_gbench.sh" 1 "$R" | tee "$W/gb.txt"
fi
if command -v beanstalkd >/dev/null && [ -d "$PEERS" ]; then
	bash "$PEERS/run_tbench.sh" bs "$R" | tee "$W/bs.txt"
fi
if command -v nats-server >/dev/null && [ -d "$PEERS" ]; then
	bash "$PEERS/run_tbench.sh" nats "$R" | tee "$W/nats.txt"
fi

echo
echo "ratios (patchbay median / peer median):"
python3 - "$W" <<'PY'
import os, re, sys
w = sys.argv[1]
def load(name):
    p = os.path.join(w, name); d = {}
    if not os.path.exists(p): return d
    for l in open(p):
        m = re.match(r'(S\d+[a-c]?) .*median=([0-9.]+)', l)
        if m: d[m.group(1)] = float(m.group(2))
        m = re.search(r'RSS after:\s*(\d+)', l)
        if m: d['RSS'] = float(m.group(1))
    return d
pb = load('pb.txt'); peers = [('gearmand -t 1', load('gb.txt')), ('beanstalkd', load('bs.txt')), ('NATS', load('nats.txt'))]
print('| scenario | patchbay | ' + ' | '.join(n for n, _ in peers) + ' |')
print('|---|---|' + '---|' * len(peers))
for s in ['S1', 'S2', 'S3', 'S4', 'S5', 'S6a', 'S6b', 'RSS']:
    if s not in pb: continue
    cells = []
    for _, d in peers:
        cells.append(f"{d[s]:,.0f} ({pb[s]/d[s]:.2f}x)" if s in d and d[s] else '-')
    print(f"| {s} | {pb[s]:,.0f} | " + ' | '.join(cells) + ' |')
PY
