#!/usr/bin/env bash
# Echo benchmark: duplex against the floor of its stack (bare
# fasthttp/websocket, bench/floor) and the tutorial's Node.js server
# (bench/node-tutorial), all driven by cmd/duplexload over loopback.
#
#   bench/run-echo.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-c CONNS] [-s SIZE]
#                     [-S "floor node duplex"] [-o OUTDIR] [-p]
#
# Each round runs every server once, in the same order (floor, node, duplex,
# floor, node, duplex, ...), so machine noise hits all of them alike. Each
# run starts the server fresh, waits for its port, runs
#   duplexload echo -conns CONNS -size SIZE -warmup WARMUP -duration DURATION -json
# and stops the server. At the end it prints every run, the medians per
# server and the ratios duplex/floor and duplex/node. Besides throughput and
# latency it reports the server's CPU time per reply (utime+stime of the
# server process over the whole load run, divided by every correct reply
# including warmup): less sensitive to machine noise than msgs/s.
#
#   -p   pin each server to CPU 0 and the load tool to CPU 1 (taskset);
#        default: no pinning, both share all CPUs.
#
# Environment: FLOOR_PORT (9001), NODE_PORT (9002), DUPLEX_PORT (9003),
# DUPLEX_BIN (/tmp/duplex, built from the repository root).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail

ROUNDS=5
DURATION=10s
WARMUP=2s
CONNS=50
SIZE=16
SERVERS="floor node duplex"
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
	h) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 100 ]] || { echo "-r must be 1..100" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOOR_PORT=${FLOOR_PORT:-9001}
NODE_PORT=${NODE_PORT:-9002}
DUPLEX_PORT=${DUPLEX_PORT:-9003}
DUPLEX_BIN=${DUPLEX_BIN:-/tmp/duplex}
BIN=$(mktemp -d /tmp/duplex-bench.XXXXXX)
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"

SERVER_PID=""
LOAD_PID=""
stop_load() {
	[[ -n $LOAD_PID ]] || return 0
	kill -TERM "$LOAD_PID" 2>/dev/null || true
	wait "$LOAD_PID" 2>/dev/null || true
	LOAD_PID=""
}
stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	local pid=$SERVER_PID
	SERVER_PID=""
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do # up to 5 s, then force
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap 'stop_load; stop_server' EXIT
trap 'stop_load; stop_server; exit 130' INT TERM

for tool in go node npm jq; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

echo "== build (binaries in $BIN, results in $OUT)"
(cd "$ROOT" && go build -o "$BIN/duplexload" ./cmd/duplexload)
(cd "$ROOT" && go build -o "$BIN/floor" ./bench/floor)
if [[ " $SERVERS " == *" duplex "* ]]; then
	(cd "$ROOT" && go build -o "$DUPLEX_BIN" .)
fi
if [[ " $SERVERS " == *" node "* && ! -d $ROOT/bench/node-tutorial/node_modules/nodejs-websocket ]]; then
	(cd "$ROOT/bench/node-tutorial" && npm ci --no-audit --no-fund --loglevel=error)
fi

server_pin=()
load_pin=()
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
	duplex) echo "$DUPLEX_PORT" ;;
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
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "port $port is already in use; not starting $name" >&2
		return 1
	fi
	case $name in
	floor) "${server_pin[@]}" "$BIN/floor" -addr "127.0.0.1:$port" >"$log" 2>&1 & ;;
	node) (cd "$ROOT/bench/node-tutorial" && HOST=127.0.0.1 PORT=$port exec "${server_pin[@]}" node server.js) >"$log" 2>&1 & ;;
	duplex) HOST=127.0.0.1 PORT=$port "${server_pin[@]}" "$DUPLEX_BIN" >"$log" 2>&1 & ;;
	esac
	SERVER_PID=$!
	for _ in $(seq 100); do # up to 10 s
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "$name exited at start-up; log:" >&2
			cat "$log" >&2
			SERVER_PID=""
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$name did not open port $port within 10 s" >&2
	return 1
}

echo "== $ROUNDS rounds x [$SERVERS], $CONNS conns, $SIZE-byte messages, warmup $WARMUP, duration $DURATION, pin=$PIN"
TSV=$OUT/runs.tsv
printf 'round\tserver\tmsgs_per_s\tp50_us\tp99_us\terrors\tconns\tcpu_us_per_msg\n' >"$TSV"
printf '%-6s %-7s %12s %9s %9s %7s %6s %11s\n' round server msgs/s p50_us p99_us errors conns cpu_us/msg
for round in $(seq "$ROUNDS"); do
	for name in $SERVERS; do
		json="$OUT/$name-$round.json"
		start_server "$name" "$OUT/$name-$round.log"
		cpu0=$(cpu_ticks "$SERVER_PID")
		# In the background + wait, so a signal reaches the trap at once.
		"${load_pin[@]}" "$BIN/duplexload" echo -url "$(url_of "$name")" -conns "$CONNS" -size "$SIZE" \
			-warmup "$WARMUP" -duration "$DURATION" -json >"$json" 2>"$OUT/$name-$round.load.log" &
		LOAD_PID=$!
		rc=0
		wait "$LOAD_PID" || rc=$?
		LOAD_PID=""
		if [[ $rc != 0 ]]; then
			echo "duplexload failed (exit $rc) against $name:" >&2
			cat "$OUT/$name-$round.load.log" >&2
			exit 1
		fi
		cpu1=$(cpu_ticks "$SERVER_PID")
		stop_server
		jq -r --arg r "$round" --arg n "$name" --argjson cpu "$((cpu1 - cpu0))" --argjson hz "$CLK_TCK" \
			'[$r, $n, (.msgs_per_s|floor), (.latency_us.p50|floor), (.latency_us.p99|floor), .errors + .warmup_errors,
			  "\(.conns_open)/\(.conns)", (if .msgs_total > 0 then ($cpu * 1e6 / $hz / .msgs_total * 100 | round) / 100 else 0 end)] | @tsv' \
			"$json" | tee -a "$TSV" |
			awk -F'\t' '{ printf "%-6s %-7s %12s %9s %9s %7s %6s %11s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
		sleep 1 # let sockets in TIME_WAIT and the CPU settle
	done
done

# median COLUMN NAME: median of a runs.tsv column over NAME's runs.
median() {
	awk -F'\t' -v c="$1" -v n="$2" 'NR > 1 && $2 == n { print $c }' "$TSV" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "== medians over $ROUNDS rounds"
printf '%-7s %12s %9s %9s %11s %12s\n' server msgs/s p50_us p99_us cpu_us/msg errors_total
declare -A RATE CPU
for name in $SERVERS; do
	RATE[$name]=$(median 3 "$name")
	CPU[$name]=$(median 8 "$name")
	errs=$(awk -F'\t' -v n="$name" 'NR > 1 && $2 == n { s += $6 } END { print s + 0 }' "$TSV")
	printf '%-7s %12.0f %9.0f %9.0f %11.2f %12s\n' "$name" "${RATE[$name]}" \
		"$(median 4 "$name")" "$(median 5 "$name")" "${CPU[$name]}" "$errs"
done

# paired COLUMN BASE: median over rounds of duplex's value / BASE's value in
# the same round (robust to noise that shifts whole rounds).
paired() {
	awk -F'\t' -v c="$1" -v b="$2" 'NR > 1 && $2 == "duplex" { d[$1] = $c } NR > 1 && $2 == b { v[$1] = $c }
		END { for (r in d) if ((r in v) && v[r] > 0) print d[r] / v[r] }' "$TSV" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [[ -n ${RATE[duplex]:-} ]]; then
	echo
	for base in floor node; do
		[[ -n ${RATE[$base]:-} ]] || continue
		awk -v d="${RATE[duplex]}" -v b="${RATE[$base]}" -v n="$base" -v p="$(paired 3 "$base")" \
			'BEGIN { printf "ratio duplex/%-5s %.3f  (median msgs/s %.0f / %.0f); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
		awk -v d="${CPU[duplex]}" -v b="${CPU[$base]}" -v n="$base" -v p="$(paired 8 "$base")" \
			'BEGIN { if (b > 0) printf "  cpu/msg duplex/%-5s %.3f  (median us %.2f / %.2f; lower is better); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
	done
fi
echo
echo "raw results: $OUT"
