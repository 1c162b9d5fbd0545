#!/usr/bin/env bash
# Broadcast and idle-memory benchmark: duplex against Centrifugo v6 and a
# uWebSockets.js server (bench/uws), all driven by cmd/duplexload over
# loopback, interleaved (duplex, centrifugo, uws, duplex, ...) so machine
# noise hits them alike.
#
#   bench/run-broadcast.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-s SIZE]
#                          [-L "SUBSxRATE ..."] [-I IDLE_CONNS] [-S SETTLE]
#                          [-T "duplex centrifugo uws"] [-P pad|chat] [-o OUTDIR]
#
# For every load SUBSxRATE (default "1000x100 10000x10") and round, each
# target is started fresh, measured with
#   duplexload broadcast -target T -subs SUBS -rate RATE -size SIZE -payload P
#             -warmup WARMUP -duration DURATION -server-pid PID -json
# (target duplex-deflate: duplex, with subscribers that negotiate
# permessage-deflate as browsers do, -deflate; duplex-alone-deflate: the
# same against a server with WS_COMPRESSION_CONTEXT=off, every message
# compressed on its own; -P chat pads the data with chat-like JSON, which
# compresses as real chat does)
# and stopped. Then, per round and target, a fresh server is measured with
#   duplexload idle -target T -conns IDLE_CONNS -settle SETTLE -server-pid PID -json
# (-I 0 skips it). At the end it prints every run, the medians per target
# and the ratios duplex/centrifugo and duplex/uws (ratio of medians, and
# the median of the per-round ratios).
#
# duplex: `go build -o $DUPLEX_BIN .` (at the current tree), default config except HOST, PORT,
# API_KEY and MAX_CONNECTIONS=20000, with no per-address limits
# (MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0: the load comes from a few
# loopback addresses); channel push:bench.
# Centrifugo: $CF_BIN, built once with
#   GOBIN=/tmp/cfbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# if missing; config: client.insecure, http_api.key, its own port,
# prometheus on (for go_goroutines), usage stats off; channel bench. If it
# cannot be built or started, the script says so and measures the others.
# uws: bench/uws/server.js (duplex's subscribe and POST /api/publish on
# uWS's pub/sub; npm ci in bench/uws if needed; -target duplex, no
# goroutines to scrape); channel push:bench. Skipped, saying why, without
# node or uWS's native addon.
#
# Environment: DUPLEX_PORT (9013), CF_PORT (9014), UWS_PORT (9015),
# DUPLEX_BIN (built into the temporary binary directory),
# CF_BIN (/tmp/cfbin/centrifugo), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3
DURATION=10s
WARMUP=2s
SIZE=64
LOADS="1000x100 10000x10"
IDLE=10000
SETTLE=10s
TARGETS="duplex centrifugo uws"
PAYLOAD=pad
OUT=""
while getopts "r:d:w:s:L:I:S:T:P:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	L) LOADS=$OPTARG ;;
	I) IDLE=$OPTARG ;;
	S) SETTLE=$OPTARG ;;
	T) TARGETS=$OPTARG ;;
	P) PAYLOAD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -r "$ROUNDS" 1 50
int_in -I "$IDLE" 0 19000 " (file limit 20000)"
for l in $LOADS; do
	[[ $l =~ ^[0-9]+x[0-9.]+$ ]] || { echo "bad load $l (want SUBSxRATE)" >&2; exit 2; }
done

DUPLEX_PORT=${DUPLEX_PORT:-9013}
CF_PORT=${CF_PORT:-9014}
UWS_PORT=${UWS_PORT:-9015}
CF_BIN=${CF_BIN:-/tmp/cfbin/centrifugo}
CF_VERSION=v6.9.1
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-bcast.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"

set_traps stop_server
require_tools go jq awk

# The load tool holds one descriptor per connection; so does each server.
raise_file_limit
echo "== open-file limit $(ulimit -n)"

echo "== build (binaries in $BIN, results in $OUT)"
build_go "$BIN/duplexload" ./cmd/duplexload
if [[ " $TARGETS " == *" duplex"* ]]; then
	build_go "$DUPLEX_BIN" .
fi
ensure_centrifugo
ensure_uws TARGETS

CF_CONF=$OUT/centrifugo.json
write_cf_conf "$CF_CONF" '"prometheus": {"enabled": true},'

start_server() { # name log
	local name=$1 log=$2 port
	port=$(target_port "$name")
	port_unused "$name" "$port" || return 1
	case $name in
	# shellcheck disable=SC2046 # duplex_env: no word or NAME=VALUE words
	duplex | duplex-deflate | duplex-alone-deflate) env HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 \
		MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 $(duplex_env "$name") "$DUPLEX_BIN" >"$log" 2>&1 & ;;
	centrifugo) "$CF_BIN" --config "$CF_CONF" >"$log" 2>&1 & ;;
	uws) start_uws server.js "$port" >"$log" 2>&1 & ;;
	esac
	SERVER_PID=$!
	wait_server "$name" "$port" "$log" 1 # 1 s: let the runtime settle before any baseline
}

check_centrifugo

BTSV=$OUT/broadcast.tsv
ITSV=$OUT/idle.tsv
printf 'load\tround\ttarget\tdeliveries_per_s\tp50_us\tp99_us\tmax_us\tlost\tdup\tcpu_s_per_m\trss_kb\tsubs_open\tpublish_rate\tdisconnects\tloader_cpu_s\twire_b_per_delivery\n' >"$BTSV"
printf 'round\ttarget\tconns_alive\trss_base_kb\trss_kb\trss_per_conn_b\tgoroutines_per_conn\tconnect_rate\tdisconnects\n' >"$ITSV"

echo "== broadcast: loads [$LOADS] x $ROUNDS rounds x [$TARGETS], $SIZE-byte $PAYLOAD data, warmup $WARMUP, duration $DURATION"
printf '%-10s %-5s %-14s %11s %8s %8s %8s %6s %5s %9s %9s %8s\n' load round target deliv/s p50_us p99_us max_us lost dup cpu_s/M rss_kB wire_B/d
for l in $LOADS; do
	subs=${l%x*}
	rate=${l#*x}
	for round in $(seq "$ROUNDS"); do
		for name in $TARGETS; do
			base="$OUT/bcast-$l-$name-$round"
			start_server "$name" "$base.server.log"
			# shellcheck disable=SC2046 # deflate_args: no flag or one word
			run_load "$base.json" "$base.load.log" broadcast -target "$(target_protocol "$name")" -url "$(target_url "$name")" \
				-api-key "$KEY" -subs "$subs" -rate "$rate" -size "$SIZE" -payload "$PAYLOAD" -warmup "$WARMUP" -duration "$DURATION" \
				-server-pid "$SERVER_PID" $(deflate_args "$name")
			stop_server
			jq -r --arg l "$l" --arg r "$round" --arg n "$name" \
				'[$l, $r, $n, (.deliveries_per_s|round), (.latency_us.p50|round), (.latency_us.p99|round), (.latency_us.max|round),
				  .lost, .duplicated, ((.server.cpu_s_per_million_deliveries // 0) * 1000 | round / 1000), (.server.rss_kb // 0),
				  .subs_open, (.publish_rate * 10 | round / 10), .disconnects, (.loader_cpu_s * 100 | round / 100),
				  ((.wire_bytes_per_delivery // 0) * 10 | round / 10)] | @tsv' "$base.json" |
				tee -a "$BTSV" |
				awk -F'\t' '{ printf "%-10s %-5s %-14s %11s %8s %8s %8s %6s %5s %9s %9s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $16 }'
			sleep 1
		done
	done
done

if [[ $IDLE -gt 0 ]]; then
	echo
	echo "== idle: $IDLE connections x $ROUNDS rounds x [$TARGETS], settle $SETTLE"
	printf '%-5s %-10s %7s %10s %10s %12s %10s %10s\n' round target alive rss0_kB rss_kB rss_B/conn gor/conn conn/s
	for round in $(seq "$ROUNDS"); do
		for name in $TARGETS; do
			base="$OUT/idle-$name-$round"
			start_server "$name" "$base.server.log"
			metrics=() # the uWS peer has no /metrics (and no goroutines)
			if [[ $name == uws ]]; then metrics=(-metrics none); fi
			# shellcheck disable=SC2046 # deflate_args: no flag or one word
			run_load "$base.json" "$base.load.log" idle -target "$(target_protocol "$name")" -url "$(target_url "$name")" \
				-conns "$IDLE" -settle "$SETTLE" -server-pid "$SERVER_PID" "${metrics[@]}" $(deflate_args "$name")
			stop_server
			jq -r --arg r "$round" --arg n "$name" \
				'[$r, $n, .conns_alive, .rss_base_kb, .rss_kb, (.rss_per_conn_bytes|round),
				  ((.goroutines_per_conn // -1) * 100 | round / 100), (.connect_rate|round), .disconnects] | @tsv' "$base.json" |
				tee -a "$ITSV" |
				awk -F'\t' '{ printf "%-5s %-10s %7s %10s %10s %12s %10s %10s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
			sleep 1
		done
	done
fi

echo
echo "== medians over $ROUNDS rounds (lost, dup, disconnects: totals)"
printf '%-10s %-14s %11s %8s %8s %8s %6s %5s %9s %9s %6s %8s\n' load target deliv/s p50_us p99_us max_us lost dup cpu_s/M rss_kB disc wire_B/d
for l in $LOADS; do
	for name in $TARGETS; do
		cond="\$1 == \"$l\" && \$3 == \"$name\""
		printf '%-10s %-14s %11.0f %8.0f %8.0f %8.0f %6s %5s %9.3f %9.0f %6s %8.1f\n' "$l" "$name" \
			"$(median "$BTSV" 4 "$cond")" "$(median "$BTSV" 5 "$cond")" "$(median "$BTSV" 6 "$cond")" \
			"$(median "$BTSV" 7 "$cond")" "$(sum_col "$BTSV" 8 "$cond")" "$(sum_col "$BTSV" 9 "$cond")" "$(median "$BTSV" 10 "$cond")" \
			"$(median "$BTSV" 11 "$cond")" "$(sum_col "$BTSV" 14 "$cond")" "$(median "$BTSV" 16 "$cond")"
	done
	print_ratios "$BTSV" 2 3 "$(printf '%-10s ' "$l")" "\$1 == \"$l\"" "centrifugo uws" \
		10:cpu_s_per_M 6:p99_us 5:p50_us 4:deliveries_per_s
	RATIO_OF=duplex-deflate print_ratios "$BTSV" 2 3 "$(printf '%-10s ' "$l")" "\$1 == \"$l\"" "duplex duplex-alone-deflate" \
		10:cpu_s_per_M 16:wire_bytes_per_delivery 6:p99_us
	RATIO_OF=duplex-alone-deflate print_ratios "$BTSV" 2 3 "$(printf '%-10s ' "$l")" "\$1 == \"$l\"" duplex \
		10:cpu_s_per_M 16:wire_bytes_per_delivery 6:p99_us
done
if [[ $IDLE -gt 0 ]]; then
	echo
	printf '%-14s %7s %12s %10s %10s %6s\n' target alive rss_B/conn gor/conn conn/s disc
	for name in $TARGETS; do
		cond="\$2 == \"$name\""
		printf '%-14s %7.0f %12.0f %10s %10.0f %6s\n' "$name" "$(median "$ITSV" 3 "$cond")" "$(median "$ITSV" 6 "$cond")" \
			"$(median "$ITSV" 7 "$cond")" "$(median "$ITSV" 8 "$cond")" \
			"$(sum_col "$ITSV" 9 "$cond")"
	done
	print_ratios "$ITSV" 1 2 "idle " 1 centrifugo 6:rss_per_conn 7:goroutines_per_conn
	print_ratios "$ITSV" 1 2 "idle " 1 uws 6:rss_per_conn
fi
echo
echo "raw results: $OUT"
