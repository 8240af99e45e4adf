#!/bin/sh
# lib-no-exit.sh STATIC SHARED: fails when libpatchbay could end the process
# by itself. STATIC is the archive of clients/lib's own objects, SHARED the
# installed libpatchbay.so; neither may import exit(), abort(), assert and
# kin. (msgpack-c's inline msgpack_sbuffer_write() asserts: the library and
# proto/ write through proto_sbuffer_write() instead.)
set -eu
nm=${NM:-nm}
if ! command -v "$nm" >/dev/null 2>&1; then
	echo "lib-no-exit: no $nm, skipped"
	exit 77
fi
fatal='exit|_exit|_Exit|quick_exit|abort|err|errx|verr|verrx'
fatal="$fatal|__assert_fail|__assert_perror_fail|__assert|uthash_fatal"

# Prints the names of the undefined symbols of an object, one per line.
undefined() {
	"$nm" "$@" |
	    awk 'NF >= 2 && $(NF-1) == "U" { sub(/@.*/, "", $NF); print $NF }' |
	    sort -u
}

status=0
bad=$(undefined -u "$1" | grep -E -x "$fatal" || true)
if [ -n "$bad" ]; then
	echo "lib-no-exit: $1 calls:" $bad
	status=1
fi
bad=$(undefined -D --undefined-only "$2" | grep -E -x "$fatal" || true)
if [ -n "$bad" ]; then
	echo "lib-no-exit: $2 calls:" $bad
	status=1
fi
[ $status -eq 0 ] && echo "lib-no-exit: neither library calls exit, abort or assert"
exit $status
