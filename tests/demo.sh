#!/usr/bin/env bash
# The README's first command: install the build dependencies, build
# patchbay, start a broker that spawns a local worker pool from
# docs/examples/demo.conf, and answer a real job through it.
# Everything it starts is stopped and its temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
export PATH="$PWD/build/clients:$PWD/build/broker:$PATH"

dir=$(mktemp -d /tmp/patchbay-demo.XXXXXX)
broker=""
cleanup() {
	if [ -n "$broker" ]; then
		kill "$broker" 2>/dev/null || true
		wait "$broker" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

export PATCHBAY_BROKER="unix:$dir/pb.sock"
run() { echo "+ $*"; "$@"; }

# In the temporary directory: demo.conf's store (demo-jobs.db) goes there.
echo "+ patchbayd -c docs/examples/demo.conf -l $PATCHBAY_BROKER &"
conf="$PWD/docs/examples/demo.conf"
(cd "$dir" && exec patchbayd -c "$conf" -l "$PATCHBAY_BROKER" \
	--ready-file "$dir/ready" 2>"$dir/broker.log") &
broker=$!
for _ in $(seq 200); do [ -f "$dir/ready" ] && break; sleep 0.05; done
[ -f "$dir/ready" ] || { cat "$dir/broker.log" >&2; exit 1; }

# The job waits in the queue until the pool's first worker has registered.
echo "+ echo hello | patchbay run rev"
out=$(echo hello | patchbay run rev --timeout 10000)
echo "$out"
[ "$out" = "olleh" ] || { echo "demo: expected 'olleh', got '$out'" >&2; exit 1; }
# A background job: stored in demo-jobs.db before its id is printed.
echo "+ id=\$(echo later | patchbay run -d rev); patchbay job \$id --wait"
id=$(echo later | patchbay run -d rev)
out=$(patchbay job "$id" --wait)
echo "$out"
[ "$out" = "retal" ] || { echo "demo: expected 'retal', got '$out'" >&2; exit 1; }
run patchbay ctl ps
run patchbay ctl workers
echo "demo: ok (broker log: patchbayd's stderr, shown below)"
sed 's/^/  | /' "$dir/broker.log"
