#!/usr/bin/env bash
# The README's first command: install the build dependencies, build
# patchbay, start a broker with a worker, and answer a real job.
# Everything it starts is stopped and its temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
export PATH="$PWD/build/clients:$PWD/build/broker:$PATH"

dir=$(mktemp -d /tmp/patchbay-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

export PATCHBAY_BROKER="unix:$dir/pb.sock"
echo "+ patchbayd -l $PATCHBAY_BROKER -l tcp:127.0.0.1:0 &"
patchbayd -l "$PATCHBAY_BROKER" -l tcp:127.0.0.1:0 \
	--ready-file "$dir/ready" 2>"$dir/broker.log" &
pids+=($!)
for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.05; done
tcp=$(grep '^tcp:' "$dir/ready")

echo "+ patchbay worker rev --exec rev --capacity 4 &"
patchbay worker rev --exec rev --capacity 4 2>"$dir/worker.log" &
pids+=($!)

echo "+ echo hello | patchbay run rev --broker $tcp"
out=$(echo hello | patchbay run rev --broker "$tcp")
echo "$out"
[ "$out" = "olleh" ] || { echo "demo: expected 'olleh', got '$out'" >&2; exit 1; }
echo "+ patchbay ctl workers"
patchbay ctl workers
