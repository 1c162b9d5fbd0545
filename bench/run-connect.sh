#!/usr/bin/env bash
# Connection-rate benchmark: duplex against Centrifugo v6, a
# uWebSockets.js server (bench/uws) and the floor of duplex's stack (bare
# fasthttp/websocket, bench/floor), all driven by `duplexload connect` over
# loopback, interleaved so machine noise hits them alike (round 1: duplex,
# centrifugo, uws; round 2: uws, centrifugo, duplex; ...).
#
#   bench/run-connect.sh [-r ROUNDS] [-n CONNS] [-k INFLIGHT] [-H HOLD]
#                        [-T "duplex centrifugo uws"] [-o OUTDIR]
#
# Defaults: 5 rounds of 5,000 connections with 100 in flight, each held 1 s.
# For every round and target a fresh server is started, measured with
#   duplexload connect -target T -conns CONNS -inflight INFLIGHT -hold HOLD -server-pid PID -json
# and stopped. Each connection is timed from the start of its TCP connect
# to the reply to its subscribe command ("subscribed"). At the end the
# script prints every run, the medians per target and the ratios
# duplex/centrifugo and duplex/uws (ratio of medians, and the median of
# the per-round ratios).
#
# duplex: `go build -o $DUPLEX_BIN .` at the current tree, started with
#   HOST=127.0.0.1 PORT=$DUPLEX_PORT API_KEY=$KEY MAX_CONNECTIONS=20000 LOG_LEVEL=warn
#   MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 (the load comes from one
#   loopback address; the per-address limits would throttle it)
# (LOG_LEVEL=warn: duplex logs each connection at info, Centrifugo does not;
# everything else is duplex's default); channel push:bench.
# Centrifugo: $CF_BIN, built once with
#   GOBIN=/tmp/cfbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# if missing; config: client.insecure, http_api.key, its own port, usage
# stats off, log level warn; channel bench. If it cannot be built or
# started, the script says so and measures the others.
# uws: bench/uws/server.js (duplex's subscribe on uWS; npm ci in bench/uws
# if needed; -target duplex); channel push:bench. Skipped, saying why,
# without node or uWS's native addon.
# floor: bench/floor -reply subscribe (not in the default targets): fasthttp
# and fasthttp/websocket, one goroutine per connection, answering the
# subscribe with duplex's reply without parsing it; what duplex's stack
# costs before duplex does anything (-target duplex, path /ws).
#
# Environment: DUPLEX_PORT (9041), CF_PORT (9042), UWS_PORT (9043), FLOOR_PORT (9044),
# DUPLEX_BIN (built into the temporary directory), CF_BIN
# (/tmp/cfbin/centrifugo), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
CONNS=5000
INFLIGHT=100
HOLD=1s
TARGETS="duplex centrifugo uws"
OUT=""
while getopts "r:n:k:H:T:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	n) CONNS=$OPTARG ;;
	k) INFLIGHT=$OPTARG ;;
	H) HOLD=$OPTARG ;;
	T) TARGETS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -r "$ROUNDS" 1 50
int_in -n "$CONNS" 1 19000 " (file limit 20000)"
int_in -k "$INFLIGHT" 1 1024

DUPLEX_PORT=${DUPLEX_PORT:-9041}
CF_PORT=${CF_PORT:-9042}
UWS_PORT=${UWS_PORT:-9043}
FLOOR_PORT=${FLOOR_PORT:-9044}
CF_BIN=${CF_BIN:-/tmp/cfbin/centrifugo}
CF_VERSION=v6.9.1
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-connect.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"

set_traps stop_server
require_tools go jq awk

# The load tool holds one descriptor per connection; so does each server
# (they inherit this limit).
raise_file_limit
echo "== open-file limit $(ulimit -n)"
[[ $(ulimit -n) -gt $((CONNS + 200)) ]] || { echo "open-file limit too low for $CONNS connections" >&2; exit 1; }

echo "== build (binaries in $BIN, results in $OUT)"
build_go "$BIN/duplexload" ./cmd/duplexload
if has_word "$TARGETS" duplex; then
	build_go "$DUPLEX_BIN" .
fi
if has_word "$TARGETS" floor; then
	build_go "$BIN/floor" ./bench/floor
fi
ensure_centrifugo
ensure_uws TARGETS

CF_CONF=$OUT/centrifugo.json
write_cf_conf "$CF_CONF" '"log": {"level": "warn"},'

start_server() { # name log
	local name=$1 log=$2 port
	port=$(target_port "$name")
	port_unused "$name" "$port" || return 1
	case $name in
	duplex) HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 LOG_LEVEL=warn "$DUPLEX_BIN" >"$log" 2>&1 & ;;
	centrifugo) "$CF_BIN" --config "$CF_CONF" >"$log" 2>&1 & ;;
	uws) start_uws server.js "$port" >"$log" 2>&1 & ;;
	floor) "$BIN/floor" -addr "127.0.0.1:$port" -reply subscribe >"$log" 2>&1 & ;;
	esac
	SERVER_PID=$!
	wait_server "$name" "$port" "$log" 1 # 1 s: let the runtime settle
}

check_centrifugo "$OUT/centrifugo-version.txt"

# TIME_WAIT: the tool closes first, so each run leaves CONNS sockets in
# TIME_WAIT on the client side for 60 s; loopback reuses them
# (net.ipv4.tcp_tw_reuse = 2, the default) as long as the kernel picks the
# source port, which it does with one source address (the default below
# 5,000 connections per address).
echo "== tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo ?), ports $(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null | tr '\t' -)"

TSV=$OUT/connect.tsv
printf 'round\ttarget\tconns_per_s\tp50_us\tp99_us\tmax_us\tcompleted\terrors\tdisconnects\tcpu_s_per_1000\tcpu_s\twall_s\tloader_cpu_s\ttcp_p99_us\tupgraded_p99_us\trss_kb\n' >"$TSV"

echo "== connect: $CONNS connections, $INFLIGHT in flight, hold $HOLD, x $ROUNDS rounds x [$TARGETS]"
printf '%-5s %-10s %9s %9s %9s %9s %6s %5s %5s %9s %7s\n' round target conn/s p50_us p99_us max_us done err disc cpu_s/1k loadcpu
read -r -a ORDER <<<"$TARGETS"
for round in $(seq "$ROUNDS"); do
	order=("${ORDER[@]}")
	if ((round % 2 == 0)); then # alternate who goes first
		order=()
		for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do order+=("${ORDER[i]}"); done
	fi
	for name in "${order[@]}"; do
		base="$OUT/connect-$name-$round"
		start_server "$name" "$base.server.log"
		run_load "$base.json" "$base.load.log" connect -target "$(target_protocol "$name")" -url "$(target_url "$name")" \
			-conns "$CONNS" -inflight "$INFLIGHT" -hold "$HOLD" -server-pid "$SERVER_PID"
		stop_server
		jq -r --arg r "$round" --arg n "$name" \
			'[$r, $n, (.conns_per_s|round), (.subscribed_us.p50|round), (.subscribed_us.p99|round), (.subscribed_us.max|round),
			  .completed, .errors, .disconnects, ((.server.cpu_s_per_1000_conns // 0) * 1000 | round / 1000),
			  ((.server.cpu_s // 0) * 100 | round / 100), (.wall_s * 1000 | round / 1000), (.loader_cpu_s * 100 | round / 100),
			  (.tcp_us.p99|round), (.upgraded_us.p99|round), (.server.rss_kb // 0)] | @tsv' "$base.json" |
			tee -a "$TSV" |
			awk -F'\t' '{ printf "%-5s %-10s %9s %9s %9s %9s %6s %5s %5s %9s %7s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13 }'
		sleep 2
	done
done

echo
echo "== medians over $ROUNDS rounds (errors, disconnects: totals)"
printf '%-10s %9s %9s %9s %9s %6s %5s %9s %9s %9s\n' target conn/s p50_us p99_us max_us err disc cpu_s/1k tcp_p99 upg_p99
for name in $TARGETS; do
	cond="\$2 == \"$name\""
	printf '%-10s %9.0f %9.0f %9.0f %9.0f %6s %5s %9.3f %9.0f %9.0f\n' "$name" \
		"$(median "$TSV" 3 "$cond")" "$(median "$TSV" 4 "$cond")" "$(median "$TSV" 5 "$cond")" "$(median "$TSV" 6 "$cond")" \
		"$(sum_col "$TSV" 8 "$cond")" "$(sum_col "$TSV" 9 "$cond")" "$(median "$TSV" 10 "$cond")" "$(median "$TSV" 14 "$cond")" "$(median "$TSV" 15 "$cond")"
done
print_ratios "$TSV" 1 2 "" 1 "centrifugo uws floor" 3:conns_per_s 4:p50_us 5:p99_us 10:cpu_s_per_1000
if has_word "$TARGETS" duplex && has_word "$TARGETS" centrifugo; then
	echo "  goal: duplex/centrifugo conns_per_s ratio >= 1.0"
fi
echo
echo "raw results: $OUT"
