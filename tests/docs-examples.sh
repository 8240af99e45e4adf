#!/usr/bin/env bash
# docs-examples.sh DOC: runs a document's examples the way a reader would.
# Every ```c and ```python block of DOC (a path from the repository's root,
# e.g. docs/library.md) is extracted when the test runs, so a block added
# later is covered too. C is compiled with -std=c11 -Wall -Wextra -pedantic
# -Werror and linked against this build's libpatchbay (through its
# uninstalled pkg-config file, as library.md says to link); Python runs
# with Debian's /usr/bin/python3 and PYTHONPATH=clients/python. Both run
# against a real patchbayd on a temporary unix socket, named by
# $PATCHBAY_BROKER, so the examples use the default endpoint. What they
# print is compared with the document's own "It prints" blocks.
#
# How a block is checked is written in the document: in an HTML comment on
# the line just above its fence (invisible once rendered), or as words
# after the language in the fence itself (```c fragment).
#
#   (nothing)                  a whole program: compiled, run, must exit 0
#   <!-- test: worker -->      a program that serves functions: started
#                              before the others, waited for until it has
#                              registered, stopped with SIGTERM after them;
#                              it must then exit 0
#   <!-- test: exit=N -->      the program must exit N
#   <!-- test: stdout -->      on the ``` block that follows a program: what
#   <!-- test: stderr -->      the program must print there, exactly; when
#                              one is given, the other stream must be empty
#                              unless it is given too
#   <!-- test: fragment -->    not a whole program: C is compiled (not
#                              linked or run) as the body of a function whose
#                              arguments are struct pb_client *c, struct
#                              pb_worker *w and struct pb_job *job; Python is
#                              only compiled. Prefer whole programs.
#   <!-- example: PATH -->     the block must be PATH's exact text
#   <!-- test-broker: ARGS --> anywhere in DOC: more patchbayd arguments for
#                              its broker (paths from the repository's root)
#
# Programs run in document order, workers first, each within 30 s, in a
# temporary directory. Everything started here (broker, workers, programs)
# is stopped and the directory removed however the script ends. Exit 77
# (meson: SKIP) when a tool the document's blocks need is missing: a C
# compiler, or python3 with msgpack.
set -uo pipefail

src=${PATCHBAY_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${PATCHBAY_BUILDDIR:-$src/build}
patchbayd=${PATCHBAYD:-$build/broker/patchbayd}
cli=${PATCHBAY_CLI:-$build/clients/patchbay}
py=${PATCHBAY_PYTHON:-/usr/bin/python3}
# meson passes its compiler (it may be "ccache cc") and the build's
# sanitizer flags, without which the examples could not link the library.
read -r -a ccmd <<<"${PATCHBAY_CC:-cc}"
read -r -a cextra <<<"${PATCHBAY_CFLAGS:-}"
run_timeout=30

if [ $# -ne 1 ]; then
	echo "usage: docs-examples.sh DOC" >&2
	exit 2
fi
doc=$1
if [ ! -f "$src/$doc" ]; then
	echo "docs-examples: no $src/$doc" >&2
	exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/pbdocs.XXXXXX") || exit 1
broker_pid=""
worker_pids=()
current_pid=""

# Sends SIGTERM to a process and waits up to $2 seconds for it to go, then
# SIGKILL. Sets $stopped_status to its exit status.
stop_pid() {
	local pid=$1 deadline=$((SECONDS + $2))
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	stopped_status=$?
}

# Stops whatever is still running and removes the directory, whatever
# made the script end.
cleanup() {
	local pid
	trap - EXIT INT TERM
	[ -n "$current_pid" ] && stop_pid "$current_pid" 5
	for pid in "${worker_pids[@]}"; do
		stop_pid "$pid" 5
	done
	[ -n "$broker_pid" ] && stop_pid "$broker_pid" 10
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail=0
# Reports a failure of the block at doc line $1; the test goes on.
failed() {
	echo "FAIL $doc:$1: $2"
	fail=1
}

# Prints a file indented, as a failure's evidence.
show() {
	[ -s "$2" ] && { echo "  $1:"; sed 's/^/  | /' "$2"; }
}

# The blocks, with the words that say how each is checked, into
# $dir/blocks: a manifest line "N LINE LANG WORD..." per block (LINE is
# the doc line of its first line of code) and the code in N.body.
mkdir -p "$dir/blocks" "$dir/run"
if ! awk -v out="$dir/blocks" '
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
	!inblk && /^[ \t]*<!--[ \t]*(test|example|test-broker):.*-->[ \t]*$/ {
		s = $0
		sub(/^[ \t]*<!--[ \t]*/, "", s); sub(/[ \t]*-->[ \t]*$/, "", s)
		key = s; sub(/:.*/, "", key); val = s; sub(/^[^:]*:/, "", val)
		val = trim(val)
		if (key == "test-broker")
			print val > (out "/broker-args")
		else if (key == "example")
			pend = pend " example=" val
		else
			pend = pend " " val
		next
	}
	!inblk && /^[ \t]*```/ {
		s = $0
		match(s, /^[ \t]*/); indent = RLENGTH
		s = substr(s, indent + 1)
		match(s, /^`+/); fence = RLENGTH
		info = trim(substr(s, fence + 1))
		lang = info; sub(/[ \t].*/, "", lang)
		words = info; sub(/^[^ \t]*/, "", words)
		n++
		if (lang == "") lang = "-"
		printf "%d %d %s%s%s\n", n, NR + 1, lang, words, pend > (out "/manifest")
		body = sprintf("%s/%d.body", out, n)
		printf "" > body
		inblk = 1; pend = ""
		next
	}
	!inblk { pend = ""; next }
	{
		s = $0
		if (match(s, /^[ \t]*`+[ \t]*$/)) {
			t = s; gsub(/[ \t]/, "", t)
			if (length(t) >= fence) { inblk = 0; close(body); next }
		}
		for (i = 0; i < indent && substr(s, 1, 1) == " "; i++)
			s = substr(s, 2)
		print s > body
	}
	END {
		if (inblk) { print "unterminated code block at the end" > "/dev/stderr"; exit 1 }
	}' "$src/$doc"; then
	echo "FAIL $doc: cannot read its code blocks"
	exit 1
fi
touch "$dir/blocks/manifest"

# Sorts the blocks out: programs (c, python) with how each is checked, and
# the expected output blocks, attached to the program above them.
progs=()                       # block numbers of the c and python blocks
declare -A lang line kind want exitcode example
need_c=0 need_py=0 nworkers=0 last=""
while read -r n ln lg words; do
	w_stdout=0 w_stderr=0 w_kind=run w_exit=0 w_example=""
	for word in $words; do
		case $word in
		stdout) w_stdout=1 ;;
		stderr) w_stderr=1 ;;
		worker|fragment) w_kind=$word ;;
		exit=[0-9]*) w_exit=${word#exit=} ;;
		example=*) w_example=${word#example=} ;;
		*) failed "$ln" "unknown test word '$word' (see tests/docs-examples.sh)" ;;
		esac
	done
	case $lg in
	c) lg=c ;;
	python|py|python3) lg=python ;;
	*) lg="" ;;
	esac
	if [ $w_stdout = 1 ] || [ $w_stderr = 1 ]; then
		if [ -z "$last" ]; then
			failed "$ln" "expected output, but no program above it"
			continue
		fi
		[ $w_stdout = 1 ] && want[$last,stdout]=$dir/blocks/$n.body
		[ $w_stderr = 1 ] && want[$last,stderr]=$dir/blocks/$n.body
		continue
	fi
	if [ -n "$w_example" ] && ! cmp -s "$dir/blocks/$n.body" "$src/$w_example"; then
		failed "$ln" "the block is not $w_example's text"
		diff -u "$src/$w_example" "$dir/blocks/$n.body" | sed 's/^/  | /' | head -40
	fi
	[ -z "$lg" ] && continue
	progs+=("$n")
	lang[$n]=$lg line[$n]=$ln kind[$n]=$w_kind exitcode[$n]=$w_exit
	[ "$w_kind" = worker ] && nworkers=$((nworkers + 1))
	[ "$lg" = c ] && need_c=1
	[ "$lg" = python ] && need_py=1
	last=$n
done <"$dir/blocks/manifest"

if [ ${#progs[@]} -eq 0 ]; then
	echo "FAIL $doc: no c or python blocks found"
	exit 1
fi
if [ $need_c = 1 ] && ! command -v "${ccmd[-1]}" >/dev/null 2>&1; then
	echo "SKIP: $doc has C examples and there is no C compiler (${ccmd[*]})"
	exit 77
fi
if [ $need_py = 1 ]; then
	if [ ! -x "$py" ]; then
		echo "SKIP: $doc has Python examples and there is no $py (apt-get install python3 python3-msgpack)"
		exit 77
	fi
	if ! "$py" -c "import msgpack" 2>/dev/null; then
		echo "SKIP: $doc has Python examples and $py cannot import msgpack (apt-get install python3-msgpack)"
		exit 77
	fi
fi

# libpatchbay as library.md says to link it: pkg-config, here with the
# build's uninstalled libpatchbay.pc; the rpath finds the .so when run.
if [ $need_c = 1 ]; then
	if command -v pkg-config >/dev/null 2>&1 &&
	    [ -f "$build/meson-uninstalled/libpatchbay-uninstalled.pc" ]; then
		read -r -a pbflags <<<"$(PKG_CONFIG_PATH="$build/meson-uninstalled" \
		    pkg-config --cflags --libs libpatchbay)"
	else
		pbflags=(-I"$src/clients" -L"$build/clients" -lpatchbay)
	fi
	pbflags+=(-Wl,-rpath,"$build/clients")
fi

# Prepares block $1 in $dir/run: compiles C, writes Python out. A program's
# file is named after the doc and line (library-19), which is also its
# name in HELLO. Line directives make the compiler and Python's tracebacks
# point at the document's lines.
base=$(basename "$doc" .md)
prepare() {
	local n=$1 ln=${line[$1]} f="$dir/run/$base-${line[$1]}" st=0
	if [ "${lang[$n]}" = c ]; then
		if [ "${kind[$n]}" = fragment ]; then
			{
				printf '#include <errno.h>\n#include <stdio.h>\n'
				printf '#include <stdlib.h>\n#include <string.h>\n'
				printf '#include <patchbay.h>\n'
				printf 'void fragment(struct pb_client *, struct pb_worker *, struct pb_job *);\n'
				printf 'void\nfragment(struct pb_client *c, struct pb_worker *w, struct pb_job *job)\n{\n'
				printf '(void)c; (void)w; (void)job;\n{\n'
				printf '#line %d "%s"\n' "$ln" "$doc"
				cat "$dir/blocks/$n.body"
				printf '}\n}\n'
			} >"$f.c"
			"${ccmd[@]}" -std=c11 -Wall -Wextra -pedantic -Werror \
			    "${cextra[@]}" -c -o "$f.o" "$f.c" "${pbflags[@]}" \
			    >"$f.cc" 2>&1 || st=$?
		else
			{
				printf '#line %d "%s"\n' "$ln" "$doc"
				cat "$dir/blocks/$n.body"
			} >"$f.c"
			"${ccmd[@]}" -std=c11 -Wall -Wextra -pedantic -Werror \
			    "${cextra[@]}" -o "$f" "$f.c" "${pbflags[@]}" \
			    >"$f.cc" 2>&1 || st=$?
		fi
		if [ $st -ne 0 ]; then
			failed "$ln" "does not compile"
			show "${ccmd[*]}" "$f.cc"
			return 1
		fi
		cmd[$n]=$f
	else
		# Blank lines first, so that line numbers are the doc's.
		{
			for ((i = 1; i < ln; i++)); do echo; done
			cat "$dir/blocks/$n.body"
		} >"$f.py"
		if ! "$py" -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' \
		    "$f.py" >"$f.cc" 2>&1; then
			failed "$ln" "is not valid Python"
			show "$py" "$f.cc"
			return 1
		fi
		cmd[$n]="$py $f.py"
	fi
}

# Every supervised process is running and every worker has registered:
# the broker has one worker per process, plus the document's workers.
ready() {
	local ps workers nproc
	ps=$("$cli" ctl ps 2>/dev/null) || return 1
	if [ "$ps" = "no supervised processes" ]; then
		nproc=0
	else
		nproc=$(printf '%s\n' "$ps" | awk '
			NR == 1 { for (i = 1; i <= NF; i++) if ($i == "STATE") c = i; next }
			$c != "running" { bad = 1 } { n++ }
			END { print bad ? -1 : n + 0 }')
		[ "$nproc" -ge 0 ] || return 1
	fi
	workers=$("$cli" ctl status 2>/dev/null | sed -n 's/^workers: //p')
	[ "$workers" = $((nproc + nworkers)) ]
}

declare -A cmd
for n in "${progs[@]}"; do
	prepare "$n"
done

# The broker, on a socket of its own; the examples find it through
# $PATCHBAY_BROKER, as the default endpoint. $PATCHBAY_BROKER_WRAPPER
# (meson test --setup vgbroker) runs it under valgrind.
unset PATCHBAY_SOCKET PATCHBAY_TOKEN PATCHBAY_FD XDG_RUNTIME_DIR
export PATCHBAY_BROKER="unix:$dir/pb.sock"
export PATH="$(dirname "$cli"):$(dirname "$patchbayd"):$PATH"
export PYTHONPATH="$src/clients/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
bargs=()
[ -f "$dir/blocks/broker-args" ] && read -r -a bargs <"$dir/blocks/broker-args"
# A config's store (demo.conf's is relative) goes in the temporary
# directory, not in the source tree the broker runs in.
for a in "${bargs[@]}"; do
	[ "$a" = "-c" ] && bargs+=(--store "$dir/store.db") && break
done
read -r -a wrapper <<<"${PATCHBAY_BROKER_WRAPPER:-}"
(cd "$src" && exec "${wrapper[@]}" "$patchbayd" -l "$PATCHBAY_BROKER" \
    --ready-file "$dir/ready" "${bargs[@]}") >"$dir/broker.log" 2>&1 &
broker_pid=$!
deadline=$((SECONDS + 30))
while [ ! -f "$dir/ready" ]; do
	if ! kill -0 "$broker_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
		echo "FAIL $doc: patchbayd did not start"
		show "patchbayd ${bargs[*]}" "$dir/broker.log"
		exit 1
	fi
	sleep 0.05
done

cd "$dir/run" || exit 1
declare -A wpid
for n in "${progs[@]}"; do
	[ "${kind[$n]}" = worker ] && [ -n "${cmd[$n]:-}" ] || continue
	${cmd[$n]} >"$n.out" 2>"$n.err" </dev/null &
	wpid[$n]=$!
	worker_pids+=($!)
done
deadline=$((SECONDS + 20))
until ready; do
	for n in "${!wpid[@]}"; do
		if ! kill -0 "${wpid[$n]}" 2>/dev/null; then
			failed "${line[$n]}" "the worker exited before it registered"
			show stdout "$n.out"
			show stderr "$n.err"
			exit 1
		fi
	done
	if [ $SECONDS -ge $deadline ]; then
		echo "FAIL $doc: the workers did not all register within 20 s"
		"$cli" ctl status 2>&1 | sed 's/^/  | /'
		exit 1
	fi
	sleep 0.05
done

# Compares what program $1 printed with what the document says it prints.
check_output() {
	local n=$1 stream exp
	[ -n "${want[$n,stdout]:-}" ] || [ -n "${want[$n,stderr]:-}" ] || return 0
	for stream in stdout stderr; do
		exp=${want[$n,$stream]:-/dev/null}
		if ! cmp -s "$exp" "$n.${stream#std}"; then
			failed "${line[$n]}" "its $stream is not what the document shows"
			diff -u --label expected --label "$stream" "$exp" "$n.${stream#std}" |
			    sed 's/^/  | /'
		fi
	done
}

ran=0
for n in "${progs[@]}"; do
	[ -n "${cmd[$n]:-}" ] && [ "${kind[$n]}" = run ] || continue
	timeout -k 5 $run_timeout ${cmd[$n]} >"$n.out" 2>"$n.err" </dev/null &
	current_pid=$!
	wait "$current_pid"
	status=$?
	current_pid=""
	ran=$((ran + 1))
	if [ $status = 124 ]; then
		failed "${line[$n]}" "did not finish within $run_timeout s"
	elif [ $status != "${exitcode[$n]}" ]; then
		failed "${line[$n]}" "exited $status, not ${exitcode[$n]}"
	fi
	if [ $status != "${exitcode[$n]}" ]; then
		show stdout "$n.out"
		show stderr "$n.err"
	else
		check_output "$n"
	fi
done

# The workers stop on SIGTERM, with status 0.
for n in "${!wpid[@]}"; do
	stop_pid "${wpid[$n]}" 10
	if [ "$stopped_status" != 0 ]; then
		failed "${line[$n]}" "the worker exited $stopped_status on SIGTERM, not 0"
		show stdout "$n.out"
		show stderr "$n.err"
	else
		check_output "$n"
	fi
done
worker_pids=()

stop_pid "$broker_pid" 60
broker_pid=""
if [ "$stopped_status" != 0 ]; then
	echo "FAIL $doc: patchbayd exited $stopped_status on SIGTERM"
	fail=1
fi
if [ $fail != 0 ]; then
	tail -n 40 "$dir/broker.log" >"$dir/broker.tail"
	show "patchbayd's log (its end)" "$dir/broker.tail"
	exit 1
fi
nfrag=0
for n in "${progs[@]}"; do
	[ "${kind[$n]}" = fragment ] && nfrag=$((nfrag + 1))
done
echo "docs-examples: $doc: ${#progs[@]} examples: $ran run, $nworkers worker(s) served them, $nfrag fragment(s) compiled"
exit 0
