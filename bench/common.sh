# bench/common.sh: what the bench scripts share. Sourced, not run, from
# the top of the repository; the script then calls bench_scratch.

# The build measured: build-bench/, a release build of this tree made by
# bench_build; or, to measure another tree (an older commit, say), a build
# of it given as PB_BENCH_BUILD, used as it is.
B=${PB_BENCH_BUILD:-$PWD/build-bench}

# bench_scratch NAME: makes the scratch directory W (/tmp/pb-NAME.*) and
# the list pids of processes to stop; when the script ends, however it
# ends, stops them and removes W (keeps it, and says where, when
# PB_BENCH_KEEP=1: bench/instr.sh's callgrind profiles, for
# callgrind_annotate --auto=yes on a build with -g).
bench_scratch() {
	W=$(mktemp -d "/tmp/pb-$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}
bench_cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${PB_BENCH_KEEP:-}" ]; then
		echo "kept $W" >&2
	else
		rm -rf "$W"
	fi
}

# bench_help "$@": with -h or --help, prints the script's header comment
# (from its second line to `set -`) and exits.
bench_help() {
	case "${1:-}" in
	-h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	esac
}

# bench_positive NAME VALUE: exits 2, saying so, unless VALUE is a positive
# number.
bench_positive() {
	[[ $2 =~ ^[1-9][0-9]*$ ]] && return 0
	echo "$0: $1 must be a positive number, not '$2' (see --help)" >&2
	exit 2
}

# Installs the Debian packages given that are missing, when root.
bench_install() {
	local need=() p
	[ "$(id -u)" -eq 0 ] || return 0
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
	done
	[ ${#need[@]} -gt 0 ] || return 0
	echo "installing ${need[*]}" >&2
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
			echo "warning: could not install ${need[*]}" >&2
	fi
}

# Builds the release build in build-bench/; configures it again when
# libgearman was installed after the first configuration, so that
# gearbench appears.
bench_build() {
	[ -n "${PB_BENCH_BUILD:-}" ] && return 0
	if [ ! -f "$B/build.ninja" ]; then
		meson setup "$B" --buildtype=release -Db_ndebug=true -Dtests=disabled >/dev/null
	elif [ ! -x "$B/bench/gearbench" ] && pkg-config --exists gearmand 2>/dev/null; then
		meson setup --reconfigure "$B" >/dev/null
	fi
	ninja -C "$B" >/dev/null
}

# Prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts connections; fails if process $2 dies
# or 10 s pass.
wait_port() {
	local _
	for _ in $(seq 200); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# start_peer NAME CMD ARGS... : starts a server whose arguments contain
# @PORT@, on a free loopback port, trying another port if that one was
# taken meanwhile. Sets PEER_PID and PEER_PORT.
start_peer() {
	local name=$1 try port pid a args
	shift
	for try in 1 2 3; do
		port=$(free_port)
		args=()
		for a in "$@"; do args+=("${a//@PORT@/$port}"); done
		"${args[@]}" >"$W/$name.log" 2>&1 &
		pid=$!
		if wait_port "$port" "$pid"; then
			pids+=("$pid")
			PEER_PID=$pid
			PEER_PORT=$port
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "$name: could not start (see its log below)" >&2
	cat "$W/$name.log" >&2
	return 1
}

# start_broker [PREFIX...] -- [PATCHBAYD ARGS...] : starts patchbayd (under
# PREFIX, e.g. valgrind) on an ephemeral loopback port and $W/pb.sock, and
# waits for its ready file. Sets PB_PID, PB_TCP and PB_UNIX.
start_broker() {
	local pre=() _
	while [ $# -gt 0 ] && [ "$1" != -- ]; do pre+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	rm -f "$W/ready" "$W/pb.sock"
	"${pre[@]}" "$B/broker/patchbayd" -l tcp:127.0.0.1:0 -l "unix:$W/pb.sock" \
		--ready-file "$W/ready" --log-level warn "$@" 2>>"$W/broker.log" &
	PB_PID=$!
	pids+=("$PB_PID")
	for _ in $(seq 1200); do
		[ -s "$W/ready" ] && grep -q '^unix:' "$W/ready" && break
		kill -0 "$PB_PID" 2>/dev/null || break
		sleep 0.05
	done
	PB_TCP=$(grep '^tcp:' "$W/ready" 2>/dev/null) || {
		echo "patchbayd did not start:" >&2
		cat "$W/broker.log" >&2
		return 1
	}
	PB_UNIX=$(grep '^unix:' "$W/ready")
}

# Stops child process $1 with SIGTERM and waits for it; SIGKILL after 60 s.
stop_pid() {
	local _ st
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq 600); do
		# A child that exited stays a zombie (Z) until waited for.
		st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
		case $st in ''|Z|X) wait "$1" 2>/dev/null || true; return 0 ;; esac
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Resident set size of process $1 in KiB.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
