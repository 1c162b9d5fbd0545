# Shared helpers of the bench/run-*.sh scripts; each script sources it right
# after `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It only defines variables and functions; it starts nothing.
# shellcheck shell=bash

# ROOT: the repository root (this file lives in ROOT/bench).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- processes -------------------------------------------------------------

SERVER_PID=""    # the server under test (start_server in each script sets it)
LOAD_PID=""      # the running duplexload, while run_load waits for it
STOP_WAIT=100    # tenths of a second stop_server waits after TERM before KILL
load_pin=()      # command prefix for duplexload (run-echo.sh -p: taskset -c 1)
MEDIAN_EMPTY=nan # what median and paired print when no row matches

# int_in FLAG VALUE MIN MAX [NOTE]: exits 2 with "FLAG must be MIN..MAXNOTE"
# unless VALUE is an integer in [MIN, MAX].
int_in() {
	[[ $2 =~ ^[0-9]+$ && $2 -ge $3 && $2 -le $4 ]] || { echo "$1 must be $3..$4${5:-}" >&2; exit 2; }
}

# stop_pid PID [TENTHS]: TERM, wait up to TENTHS/10 s (default 10 s) for the
# process to go, then KILL; reaps it.
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq "${2:-100}"); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# stop_load: stops the running duplexload, if any (TERM, then waits).
stop_load() {
	[[ -n $LOAD_PID ]] || return 0
	kill -TERM "$LOAD_PID" 2>/dev/null || true
	wait "$LOAD_PID" 2>/dev/null || true
	LOAD_PID=""
}

# stop_server: stops SERVER_PID, if set, with stop_pid (STOP_WAIT tenths of
# a second before KILL) and clears it.
stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	local pid=$SERVER_PID
	SERVER_PID=""
	stop_pid "$pid" "$STOP_WAIT"
}

# set_traps STOP: on exit runs `stop_load; STOP`; on INT or TERM the same,
# then exits 130. STOP is the script's function that stops its servers.
set_traps() {
	# shellcheck disable=SC2064 # expand $1 now, on purpose
	trap "stop_load; $1" EXIT
	# shellcheck disable=SC2064
	trap "stop_load; $1; exit 130" INT TERM
}

# require_tools TOOL...: exits 1 with "missing TOOL" unless each is on PATH.
require_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
	done
}

# raise_file_limit: open-file limit 20000, or the hard limit if lower (the
# load tool and each server hold one descriptor per connection; servers
# inherit it).
raise_file_limit() {
	ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# build_go OUT PKG: go build -o OUT PKG in ROOT.
build_go() {
	(cd "$ROOT" && go build -o "$1" "$2")
}

# nats_server: prints the nats-server the scripts run. $NATS_SERVER if
# set; else nats-server built from the module graph at go.mod's version
# (which has the fix of nats-server issue 4320 that Debian's 2.9.10
# lacks: after a stream leader change, two publications could be stored
# at one expected subject sequence), built once and cached in
# ${XDG_CACHE_HOME:-~/.cache}/duplex-test/nats-server-VERSION, the cache
# the Go tests use (internal/testbin); only if that build fails, the one
# on PATH or in /usr/sbin, with a warning. Prints nothing if there is none.
nats_server() {
	if [[ -n ${NATS_SERVER:-} ]]; then
		echo "$NATS_SERVER"
		return
	fi
	local mod=github.com/nats-io/nats-server/v2 v cache bin tmp="" sys
	if v=$(cd "$ROOT" && go list -m -f '{{.Version}}' "$mod" 2>/dev/null); then
		cache=${XDG_CACHE_HOME:-$HOME/.cache}/duplex-test
		bin=$cache/nats-server-$v
		if [[ -x $bin ]]; then
			echo "$bin"
			return
		fi
		# Built under a temporary name and renamed: a concurrent user never
		# runs half a binary.
		if mkdir -p "$cache" && tmp=$(mktemp -d "$cache/build-XXXXXX") &&
			(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$tmp/nats-server" "$mod") >&2 &&
			mv "$tmp/nats-server" "$bin"; then
			rm -rf "$tmp"
			echo "$bin"
			return
		fi
		[[ -z $tmp ]] || rm -rf "$tmp"
	fi
	sys=$(command -v nats-server 2>/dev/null || { [[ -x /usr/sbin/nats-server ]] && echo /usr/sbin/nats-server; } || true)
	if [[ -n $sys ]]; then
		echo "warning: could not build $mod from the module graph; using $sys ($("$sys" --version 2>&1)), which before v2.9.21 has nats-server issue 4320" >&2
		echo "$sys"
	fi
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_unused NAME PORT: fails, saying so, if PORT is already in use (so
# NAME is not started).
port_unused() {
	if port_open "$2"; then
		echo "port $2 is already in use; not starting $1" >&2
		return 1
	fi
}

# wait_server NAME PORT LOG SETTLE: waits up to 10 s for SERVER_PID to open
# PORT, then sleeps SETTLE seconds (0: not at all). Fails, printing LOG, if
# the server exits first (and clears SERVER_PID), or at the timeout.
wait_server() {
	local name=$1 port=$2 log=$3 settle=$4
	for _ in $(seq 100); do # up to 10 s
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "$name exited at start-up; log:" >&2
			cat "$log" >&2
			SERVER_PID=""
			return 1
		fi
		if port_open "$port"; then
			if [[ $settle != 0 ]]; then sleep "$settle"; fi
			return 0
		fi
		sleep 0.1
	done
	echo "$name did not open port $port within 10 s" >&2
	return 1
}

# run_load JSON LOG ARGS...: runs `${load_pin[@]} $BIN/duplexload ARGS... -json`
# with stdout to JSON and stderr to LOG, in the background so a signal
# reaches the traps at once. On failure prints LOG and fails; set
# LOAD_AGAINST=NAME for the call to name the server in that message.
run_load() {
	local json=$1 log=$2
	shift 2
	"${load_pin[@]}" "$BIN/duplexload" "$@" -json >"$json" 2>"$log" &
	LOAD_PID=$!
	local rc=0
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=""
	if [[ $rc != 0 ]]; then
		echo "duplexload failed (exit $rc)${LOAD_AGAINST:+ against $LOAD_AGAINST}:" >&2
		cat "$log" >&2
		return 1
	fi
}

# ---- statistics over the TSV files (header line first) ---------------------

# has_word LIST WORD: true if WORD is one of the space-separated LIST.
has_word() {
	[[ " $1 " == *" $2 "* ]]
}

# sorted_median: median of the numbers on stdin, one a line, sorted
# ascending; MEDIAN_EMPTY if there are none.
sorted_median() {
	awk -v e="$MEDIAN_EMPTY" '{ v[NR] = $1 }
		END { if (NR == 0) print e; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# median FILE COL COND: median of column COL over the rows of FILE for
# which the awk condition COND holds.
median() {
	awk -F'\t' -v c="$2" "NR > 1 && $3 { print \$c }" "$1" | sort -g | sorted_median
}

# sum_col FILE COL COND: sum of column COL over the rows where COND holds.
sum_col() {
	awk -F'\t' -v c="$2" "NR > 1 && $3 { s += \$c } END { print s + 0 }" "$1"
}

# paired FILE COL KEYCOL NAMECOL NUM DEN [COND]: median, over the keys in
# KEYCOL (the round), of NUM's value / DEN's value in column COL, where
# NAMECOL holds NUM or DEN and the awk condition COND (default: all rows)
# holds; keys where DEN's value is not > 0 are skipped. Robust to noise
# that shifts whole rounds.
paired() {
	awk -F'\t' -v c="$2" -v kc="$3" -v nc="$4" -v a="$5" -v b="$6" \
		"NR > 1 && ${7:-1} { if (\$nc == a) n[\$kc] = \$c; else if (\$nc == b) d[\$kc] = \$c }
		END { for (r in n) if ((r in d) && d[r] > 0) print n[r] / d[r] }" "$1" | sort -g | sorted_median
}

# ---- duplex against Centrifugo (run-broadcast.sh, run-connect.sh) -----------
# These use DUPLEX_PORT, CF_PORT, CF_BIN, CF_VERSION, KEY, OUT and TARGETS.

# ensure_centrifugo: if TARGETS has centrifugo and CF_BIN is missing, builds
# it with go install; if that fails, drops centrifugo from TARGETS with a
# message. Then trims TARGETS and exits 1 if it is empty.
ensure_centrifugo() {
	if has_word "$TARGETS" centrifugo && [[ ! -x $CF_BIN ]]; then
		echo "== building Centrifugo $CF_VERSION into $(dirname "$CF_BIN") (several minutes the first time)"
		if ! (cd /tmp && GOBIN=$(dirname "$CF_BIN") go install "github.com/centrifugal/centrifugo/v6@$CF_VERSION") >"$OUT/centrifugo-build.log" 2>&1 ||
			[[ ! -x $CF_BIN ]]; then
			echo "!! Centrifugo could not be built (see $OUT/centrifugo-build.log); measuring duplex only" >&2
			TARGETS=${TARGETS//centrifugo/}
		fi
	fi
	TARGETS=$(echo $TARGETS) # trim
	[[ -n $TARGETS ]] || { echo "no target left" >&2; exit 1; }
}

# write_cf_conf FILE LINE: writes Centrifugo's JSON config (insecure
# clients, API key KEY, 127.0.0.1:CF_PORT, no usage stats) with the
# script's own LINE (e.g. `"log": {"level": "warn"},`) in the middle.
write_cf_conf() {
	cat >"$1" <<EOF
{
  "client": {"insecure": true},
  "http_api": {"key": "$KEY"},
  "http_server": {"address": "127.0.0.1", "port": $CF_PORT},
  $2
  "usage_stats": {"disabled": true}
}
EOF
}

# target_port TARGET, target_url TARGET: where duplex / Centrifugo / the
# uWS peer listen. target_protocol TARGET: the load tool's -target for it
# (the uWS peer speaks duplex's protocol). duplex-deflate is duplex
# measured with clients that negotiate permessage-deflate, as browsers do
# (deflate_args); duplex-alone-deflate the same with the server started
# with WS_COMPRESSION_CONTEXT=off, so every message is compressed on its
# own (duplex_env).
target_port() {
	case $1 in
	duplex | duplex-deflate | duplex-alone-deflate) echo "$DUPLEX_PORT" ;;
	centrifugo) echo "$CF_PORT" ;;
	uws) echo "$UWS_PORT" ;;
	floor) echo "$FLOOR_PORT" ;;
	esac
}
target_url() {
	case $1 in
	duplex | duplex-deflate | duplex-alone-deflate) echo "ws://127.0.0.1:$DUPLEX_PORT/realtime" ;;
	centrifugo) echo "ws://127.0.0.1:$CF_PORT/connection/websocket" ;;
	uws) echo "ws://127.0.0.1:$UWS_PORT/realtime" ;;
	floor) echo "ws://127.0.0.1:$FLOOR_PORT/ws" ;;
	esac
}
target_protocol() {
	case $1 in
	uws | duplex-deflate | duplex-alone-deflate | floor) echo duplex ;;
	*) echo "$1" ;;
	esac
}

# print_ratios TSV KEYCOL NAMECOL LABEL COND PEERS COL:NAME...: for each
# of PEERS (space-separated) that TARGETS holds beside duplex, and each
# column COL, prints duplex/PEER: the ratio of the medians over the rows
# where the awk condition COND holds, and the median of the per-KEYCOL
# (round) ratios. LABEL starts each line (e.g. the load). With RATIO_OF
# set, that target stands for duplex (RATIO_OF=duplex-deflate, PEERS
# duplex: compression on against off).
print_ratios() {
	local tsv=$1 kc=$2 nc=$3 label=$4 cond=$5 peers=$6 of=${RATIO_OF:-duplex} peer col c d b p
	shift 6
	has_word "$TARGETS" "$of" || return 0
	for peer in $peers; do
		has_word "$TARGETS" "$peer" || continue
		for col in "$@"; do
			c=${col%%:*}
			d=$(median "$tsv" "$c" "$cond && \$$nc == \"$of\"")
			b=$(median "$tsv" "$c" "$cond && \$$nc == \"$peer\"")
			p=$(paired "$tsv" "$c" "$kc" "$nc" "$of" "$peer" "$cond")
			awk -v d="$d" -v b="$b" -v p="$p" -v n="${col#*:}" -v l="$label" -v peer="$peer" -v of="$of" \
				'BEGIN { if (b > 0) printf "  %s%s/%-10s %-20s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", l, of, peer, n, d / b, d, b, p }'
		done
	done
}

# deflate_args TARGET: the load tool's flag for a -deflate target, or nothing.
deflate_args() {
	[[ $1 == *-deflate ]] && echo -deflate || true
}

# duplex_env TARGET: the settings a duplex target adds to the server's
# environment (env's NAME=VALUE words), or nothing.
duplex_env() {
	[[ $1 == duplex-alone-deflate ]] && echo WS_COMPRESSION_CONTEXT=off || true
}

# check_centrifugo [VERSION_FILE]: Centrifugo must start here (the script's
# start_server), or it is dropped from TARGETS with a message before the
# runs. With VERSION_FILE, records `centrifugo version` there.
check_centrifugo() {
	has_word "$TARGETS" centrifugo || return 0
	if start_server centrifugo "$OUT/centrifugo-check.log"; then
		if [[ -n ${1:-} ]]; then "$CF_BIN" version >"$1" 2>&1 || true; fi
		stop_server
	else
		echo "!! Centrifugo does not start here; measuring duplex only" >&2
		SERVER_PID=""
		TARGETS=${TARGETS//centrifugo/}
		TARGETS=$(echo $TARGETS)
	fi
}

# ---- NATS (run-cluster.sh, run-live.sh) -------------------------------------

# start_nats LOG: starts $NATS_BIN with JetStream on 127.0.0.1:$NATS_PORT,
# its storage in a fresh temporary directory; sets NATS_PID and NATS_DIR
# (the script's stop function removes them) and waits up to 10 s until it
# is ready. Fails, printing LOG, if it exits first.
start_nats() {
	if port_open "$NATS_PORT"; then echo "port $NATS_PORT is in use" >&2; return 1; fi
	NATS_DIR=$(mktemp -d /tmp/duplex-nats-js.XXXXXX)
	"$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATS_DIR" >"$1" 2>&1 &
	NATS_PID=$!
	for _ in $(seq 100); do
		kill -0 "$NATS_PID" 2>/dev/null || { echo "nats-server exited; log:" >&2; cat "$1" >&2; NATS_PID=""; return 1; }
		grep -q "Server is ready" "$1" && return 0
		sleep 0.1
	done
	echo "nats-server not ready within 10 s" >&2
	return 1
}

# ---- the uWebSockets.js peers (bench/uws) -----------------------------------

UWS_DIR=$ROOT/bench/uws

# npm_ci DIR: installs DIR's npm packages exactly as its package-lock.json
# pins them, unless node_modules already holds that lock's install.
npm_ci() {
	if [[ ! -e $1/node_modules/.package-lock.json || $1/package-lock.json -nt $1/node_modules/.package-lock.json ]]; then
		(cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
	fi
}

# ensure_uws LISTVAR: if the space-separated list in the variable named
# LISTVAR has uws, makes sure bench/uws can run here (node and npm on
# PATH, npm_ci, uWS's native addon loading under this node: peer.js
# --check); otherwise drops uws from the list, saying why.
ensure_uws() {
	local -n list=$1
	has_word "$list" uws || return 0
	local why=""
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		why="node and npm are not both on PATH"
	elif ! npm_ci "$UWS_DIR"; then
		why="npm ci in $UWS_DIR failed"
	elif ! (cd "$UWS_DIR" && node peer.js --check); then
		why="its native addon does not load"
	fi
	if [[ -n $why ]]; then
		echo "!! uws (uWebSockets.js) skipped: $why" >&2
		list=${list//uws/}
		list=$(echo $list) # trim
		[[ -n $list ]] || { echo "no target left" >&2; exit 1; }
	fi
}

# start_uws SCRIPT PORT [CMD...]: runs `CMD... node SCRIPT` in bench/uws
# with HOST=127.0.0.1, PORT and API_KEY=$KEY. Start it in the background
# (start_uws ... &): it execs, so $! is node itself, the process whose
# CPU and memory the load tool reads from /proc.
start_uws() {
	local script=$1 port=$2
	shift 2
	cd "$UWS_DIR" && HOST=127.0.0.1 PORT=$port API_KEY=${KEY:-} exec "$@" node "$script"
}
