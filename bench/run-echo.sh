#!/usr/bin/env bash
# Echo benchmark: duplex against the floor of its stack (bare
# fasthttp/websocket, bench/floor), the tutorial's Node.js server
# (bench/node-tutorial) and the tutorial's echo on uWebSockets.js
# (bench/uws/echo.js), all driven by cmd/duplexload over loopback.
#
#   bench/run-echo.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-c CONNS] [-s SIZE]
#                     [-S "floor node uws duplex"] [-o OUTDIR] [-p]
#
# Each round runs every server once, in the same order (floor, node, uws,
# duplex, floor, ...), so machine noise hits all of them alike. Each
# run starts the server fresh, waits for its port, runs
#   duplexload echo -conns CONNS -size SIZE -warmup WARMUP -duration DURATION -json
# and stops the server (server duplex-deflate: duplex, with clients that
# negotiate permessage-deflate, echo -deflate). At the end it prints every
# run, the medians per server and the ratios duplex/floor, duplex/node and
# duplex/uws (and deflate/plain with duplex-deflate). Besides throughput and
# latency it reports the server's CPU time per reply (utime+stime of the
# server process over the whole load run, divided by every correct reply
# including warmup): less sensitive to machine noise than msgs/s.
#
#   -p   pin each server to CPU 0 and the load tool to CPU 1 (taskset);
#        default: no pinning, both share all CPUs.
#
# node and uws run `npm ci` in their directory first if needed; uws is
# skipped, saying why, if uWS's native addon does not load.
#
# Environment: FLOOR_PORT (9001), NODE_PORT (9002), DUPLEX_PORT (9003),
# UWS_PORT (9004), DUPLEX_BIN (/tmp/duplex, built from the repository root).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
DURATION=10s
WARMUP=2s
CONNS=50
SIZE=16
SERVERS="floor node uws duplex"
OUT=""
PIN=0
while getopts "r:d:w:c:s:S:o:ph" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	S) SERVERS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	p) PIN=1 ;;
	h) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -r "$ROUNDS" 1 100

FLOOR_PORT=${FLOOR_PORT:-9001}
NODE_PORT=${NODE_PORT:-9002}
DUPLEX_PORT=${DUPLEX_PORT:-9003}
UWS_PORT=${UWS_PORT:-9004}
DUPLEX_BIN=${DUPLEX_BIN:-/tmp/duplex}
BIN=$(mktemp -d /tmp/duplex-bench.XXXXXX)
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"

STOP_WAIT=50 # stop_server: up to 5 s, then force
MEDIAN_EMPTY=0
set_traps stop_server
require_tools go node npm jq

echo "== build (binaries in $BIN, results in $OUT)"
build_go "$BIN/duplexload" ./cmd/duplexload
build_go "$BIN/floor" ./bench/floor
if has_word "$SERVERS" duplex || has_word "$SERVERS" duplex-deflate; then
	build_go "$DUPLEX_BIN" .
fi
if has_word "$SERVERS" node; then
	npm_ci "$ROOT/bench/node-tutorial"
fi
ensure_uws SERVERS

server_pin=()
if [[ $PIN == 1 ]]; then
	server_pin=(taskset -c 0)
	load_pin=(taskset -c 1)
fi

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: user+system CPU ticks of the process so far (all threads).
cpu_ticks() {
	# Fields after the ")" that ends the command name: 12 = utime, 13 = stime.
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

port_of() {
	case $1 in
	floor) echo "$FLOOR_PORT" ;;
	node) echo "$NODE_PORT" ;;
	duplex | duplex-deflate) echo "$DUPLEX_PORT" ;;
	uws) echo "$UWS_PORT" ;;
	*) echo "unknown server $1" >&2; return 1 ;;
	esac
}

url_of() {
	case $1 in
	node) echo "ws://127.0.0.1:$NODE_PORT/" ;; # nodejs-websocket ignores the path
	*) echo "ws://127.0.0.1:$(port_of "$1")/ws" ;;
	esac
}

start_server() { # name log
	local name=$1 log=$2 port
	port=$(port_of "$name")
	port_unused "$name" "$port" || return 1
	case $name in
	floor) "${server_pin[@]}" "$BIN/floor" -addr "127.0.0.1:$port" >"$log" 2>&1 & ;;
	node) (cd "$ROOT/bench/node-tutorial" && HOST=127.0.0.1 PORT=$port exec "${server_pin[@]}" node server.js) >"$log" 2>&1 & ;;
	uws) start_uws echo.js "$port" "${server_pin[@]}" >"$log" 2>&1 & ;;
	duplex | duplex-deflate) HOST=127.0.0.1 PORT=$port "${server_pin[@]}" "$DUPLEX_BIN" >"$log" 2>&1 & ;;
	esac
	SERVER_PID=$!
	wait_server "$name" "$port" "$log" 0
}

echo "== $ROUNDS rounds x [$SERVERS], $CONNS conns, $SIZE-byte messages, warmup $WARMUP, duration $DURATION, pin=$PIN"
TSV=$OUT/runs.tsv
printf 'round\tserver\tmsgs_per_s\tp50_us\tp99_us\terrors\tconns\tcpu_us_per_msg\n' >"$TSV"
printf '%-6s %-14s %12s %9s %9s %7s %6s %11s\n' round server msgs/s p50_us p99_us errors conns cpu_us/msg
for round in $(seq "$ROUNDS"); do
	for name in $SERVERS; do
		json="$OUT/$name-$round.json"
		start_server "$name" "$OUT/$name-$round.log"
		cpu0=$(cpu_ticks "$SERVER_PID")
		# shellcheck disable=SC2046 # deflate_args: no flag or one word
		LOAD_AGAINST=$name run_load "$json" "$OUT/$name-$round.load.log" echo -url "$(url_of "$name")" \
			-conns "$CONNS" -size "$SIZE" -warmup "$WARMUP" -duration "$DURATION" $(deflate_args "$name") || exit 1
		cpu1=$(cpu_ticks "$SERVER_PID")
		stop_server
		jq -r --arg r "$round" --arg n "$name" --argjson cpu "$((cpu1 - cpu0))" --argjson hz "$CLK_TCK" \
			'[$r, $n, (.msgs_per_s|floor), (.latency_us.p50|floor), (.latency_us.p99|floor), .errors + .warmup_errors,
			  "\(.conns_open)/\(.conns)", (if .msgs_total > 0 then ($cpu * 1e6 / $hz / .msgs_total * 100 | round) / 100 else 0 end)] | @tsv' \
			"$json" | tee -a "$TSV" |
			awk -F'\t' '{ printf "%-6s %-14s %12s %9s %9s %7s %6s %11s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
		sleep 1 # let sockets in TIME_WAIT and the CPU settle
	done
done

echo
echo "== medians over $ROUNDS rounds"
printf '%-14s %12s %9s %9s %11s %12s\n' server msgs/s p50_us p99_us cpu_us/msg errors_total
declare -A RATE CPU
for name in $SERVERS; do
	cond="\$2 == \"$name\""
	RATE[$name]=$(median "$TSV" 3 "$cond")
	CPU[$name]=$(median "$TSV" 8 "$cond")
	errs=$(sum_col "$TSV" 6 "$cond")
	printf '%-14s %12.0f %9.0f %9.0f %11.2f %12s\n' "$name" "${RATE[$name]}" \
		"$(median "$TSV" 4 "$cond")" "$(median "$TSV" 5 "$cond")" "${CPU[$name]}" "$errs"
done

if [[ -n ${RATE[duplex]:-} ]]; then
	echo
	for base in floor node uws; do
		[[ -n ${RATE[$base]:-} ]] || continue
		awk -v d="${RATE[duplex]}" -v b="${RATE[$base]}" -v n="$base" -v p="$(paired "$TSV" 3 1 2 duplex "$base")" \
			'BEGIN { printf "ratio duplex/%-5s %.3f  (median msgs/s %.0f / %.0f); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
		awk -v d="${CPU[duplex]}" -v b="${CPU[$base]}" -v n="$base" -v p="$(paired "$TSV" 8 1 2 duplex "$base")" \
			'BEGIN { if (b > 0) printf "  cpu/msg duplex/%-5s %.3f  (median us %.2f / %.2f; lower is better); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
	done
fi
if [[ -n ${RATE[duplex]:-} && -n ${RATE[duplex-deflate]:-} ]]; then
	awk -v d="${RATE[duplex-deflate]}" -v b="${RATE[duplex]}" -v p="$(paired "$TSV" 3 1 2 duplex-deflate duplex)" \
		'BEGIN { printf "ratio deflate/plain  %.3f  (median msgs/s %.0f / %.0f); median of per-round ratios %.3f\n", d / b, d, b, p }'
fi
echo
echo "raw results: $OUT"
