#!/usr/bin/env bash
# bench/tls.sh [RUNS]   the job path over TLS against plain TCP
#
# Builds the release build in build-bench/, makes a CA and a certificate
# for 127.0.0.1 with the openssl CLI (tests/make-certs.sh), starts one
# patchbayd listening on tcp:127.0.0.1:0 and tls:127.0.0.1:0, and one echo
# worker of capacity 1 and one of capacity 64 on each. Then S1 (one job in
# flight), S2 (100 in flight, 16 B) and S3 (100 in flight, 4 KiB) with
# bench/pbbench, RUNS times each (default 5), TCP and TLS in turn run by
# run. Prints every run, the medians and the ratio TLS/TCP, and the
# broker's CPU time over the whole run. Everything binds to 127.0.0.1 and
# every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_help "$@"
R=${1:-5}
bench_positive RUNS "$R"
bench_scratch tls
command -v openssl >/dev/null || bench_install openssl
bench_build
PB=$B/bench/pbbench
mkdir -p "$W/res" "$W/certs"
bash tests/make-certs.sh "$W/certs"
export PATCHBAY_TLS_CA=$W/certs/ca.crt

start_broker -- -l tls:127.0.0.1:0 --tls-cert "$W/certs/server.crt" \
	--tls-key "$W/certs/server.key" --max-queue 1000000 --no-worker-wait 10m
PB_TLS=$(grep '^tls:' "$W/ready")
WP=()
"$PB" worker "$PB_TCP" echo 0 1 >/dev/null 2>&1 & WP+=($!)
"$PB" worker "$PB_TLS" techo 0 1 >/dev/null 2>&1 & WP+=($!)
"$PB" worker "$PB_TCP" echo64 0 64 >/dev/null 2>&1 & WP+=($!)
"$PB" worker "$PB_TLS" techo64 0 64 >/dev/null 2>&1 & WP+=($!)
pids+=("${WP[@]}")
sleep 0.5

# one SCEN SYS MODE ARGS...: one run; prints and records its last line.
one() {
	local scen=$1 sys=$2 mode=$3 out ep fn
	shift 3
	case $sys in
	tcp) ep=$PB_TCP fn=echo ;;
	tls) ep=$PB_TLS fn=techo ;;
	tcp64) ep=$PB_TCP fn=echo64 ;;
	tls64) ep=$PB_TLS fn=techo64 ;;
	esac
	out=$(timeout 300 "$PB" "$mode" "$ep" "$fn" "$@" 2>>"$W/clients.err" |
	    tail -n 1) || true
	[ -n "$out" ] || out="FAILED (see stderr)"
	printf '%-3s %-6s %s\n' "$scen" "$sys" "$out"
	echo "$out" >>"$W/res/$scen.$sys"
}

echo "runs=$R patchbay $PB_TCP $PB_TLS loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
cpu0=$(awk '{ print $14 + $15 }' "/proc/$PB_PID/stat")
for _ in $(seq "$R"); do
	for s in tcp tls; do one S1 "$s" seq 20000 16; done
	for s in tcp tls tcp64 tls64; do one S2 "$s" pipe 100000 16 100; done
	for s in tcp tls tcp64 tls64; do one S3 "$s" pipe 50000 4096 100; done
done
cpu1=$(awk '{ print $14 + $15 }' "/proc/$PB_PID/stat")
echo "broker CPU time: $(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) )) ms"
if [ -s "$W/clients.err" ]; then
	echo "client errors:"; sort "$W/clients.err" | uniq -c | head -5
fi

echo
python3 - "$W/res" "$R" <<'PY'
import os, re, statistics, sys

res, runs = sys.argv[1], sys.argv[2]
rate = {}
for f in os.listdir(res):
    scen, sys_ = f.split('.')
    for line in open(os.path.join(res, f)):
        m = re.search(r'rate=([0-9.]+)', line)
        if m:
            rate.setdefault((scen, sys_), []).append(float(m.group(1)))
print('| shape | worker capacity | TCP jobs/s | TLS jobs/s | TLS/TCP |')
print('| --- | --- | --- | --- | --- |')
shapes = [('S1', 'S1 seq 1c/1w 16B'), ('S2', 'S2 pipe(win100) 1c/1w 16B'),
          ('S3', 'S3 pipe(win100) 1c/1w 4KiB')]
for scen, title in shapes:
    for cap, tcp, tls in (('1', 'tcp', 'tls'), ('64', 'tcp64', 'tls64')):
        a, b = rate.get((scen, tcp)), rate.get((scen, tls))
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        print('| %s | %s | %.0f | %.0f | %.2f |' % (title, cap, ma, mb,
                                                   mb / ma))
print('\nmedians of %s runs' % runs)
PY
