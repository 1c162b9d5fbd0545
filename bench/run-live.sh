#!/usr/bin/env bash
# Live-room benchmark (issue 11): duplex with flow control, duplex with it
# off, Centrifugo v6, and duplex on a 2-node NATS cluster, each driven by
# `duplexload live` over loopback, interleaved per round (duplex,
# duplex-off, centrifugo, nats2, duplex, ...) with every server fresh.
#
#   bench/run-live.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-s SIZE]
#                     [-L "VIEWERSxSENDERSxRATE ..."] [-p PRIO_SENDERS]
#                     [-P PRIO_RATE] [-T "duplex duplex-off centrifugo nats2"]
#                     (also duplex-deflate: duplex with -deflate, viewers
#                     negotiating permessage-deflate as browsers do)
#                     [-o OUTDIR]
#
# For every load VIEWERSxSENDERSxRATE (default "5000x100x5 1000x20x2") and
# round, each target is started fresh and measured with
#   duplexload live -target T -viewers V -senders S -rate R -prio-senders P
#     -prio-rate PR -size SIZE -warmup WARMUP -duration DURATION
#     -server-pid PID [-pids node2=PID2,nats=PIDN] -json
# Senders publish over the WebSocket (client publish); P publishers post
# priority comments through the API.
#
# duplex: `go build` of the current tree, channel live:bench, NAMESPACES
# raising the live namespace's client rate to 10/s burst 20 for the load
# (the page's 3/s would refuse 5/s senders); duplex-off adds
# "flow_tick":"0s". nats2: two duplex nodes with BROKER=nats on one fresh
# nats-server with JetStream ($NATS_BIN), viewers and senders spread over
# both, the API on node 1; server CPU is node 1's, node 2's and NATS's are
# under processes. Centrifugo: $CF_BIN with client.insecure and a
# namespace "live" that allows subscribers and clients to publish.
#
# At the end it prints every run and the medians per target. Raw JSON
# (NAME-ROUND.json, for bench/chart), logs and live.tsv land in OUTDIR.
#
# Environment: DUPLEX_PORT (9031), DUPLEX_PORT2 (9032), CF_PORT (9034),
# NATS_PORT (14232), NATS_BIN (/usr/sbin/nats-server), DUPLEX_BIN,
# CF_BIN (/tmp/cfbin/centrifugo), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=1
DURATION=30s
WARMUP=3s
SIZE=64
LOADS="5000x100x5 1000x20x2"
PRIO=2
PRIORATE=1
TARGETS="duplex duplex-off centrifugo nats2"
OUT=""
while getopts "r:d:w:s:L:p:P:T:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	L) LOADS=$OPTARG ;;
	p) PRIO=$OPTARG ;;
	P) PRIORATE=$OPTARG ;;
	T) TARGETS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -r "$ROUNDS" 1 20
for l in $LOADS; do
	[[ $l =~ ^[0-9]+x[0-9]+x[0-9.]+$ ]] || { echo "bad load $l (want VIEWERSxSENDERSxRATE)" >&2; exit 2; }
done
for t in $TARGETS; do
	[[ $t =~ ^(duplex|duplex-deflate|duplex-off|centrifugo|nats2)$ ]] || { echo "bad target $t" >&2; exit 2; }
done

DUPLEX_PORT=${DUPLEX_PORT:-9031}
DUPLEX_PORT2=${DUPLEX_PORT2:-9032}
CF_PORT=${CF_PORT:-9034}
NATS_PORT=${NATS_PORT:-14232}
NATS_BIN=${NATS_BIN:-/usr/sbin/nats-server}
CF_BIN=${CF_BIN:-/tmp/cfbin/centrifugo}
CF_VERSION=v6.9.1
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-live.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"
LIVE_NS='"live":{"publish_rate":10,"publish_burst":20'

PIDS=()
NATS_PID=""
NATS_DIR=""
stop_all() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
	SERVER_PID=""
	if [[ -n $NATS_PID ]]; then stop_pid "$NATS_PID"; NATS_PID=""; fi
	if [[ -n $NATS_DIR ]]; then rm -rf "$NATS_DIR"; NATS_DIR=""; fi
}
set_traps stop_all
require_tools go jq awk curl
raise_file_limit
echo "== open-file limit $(ulimit -n)"
echo "== build (binaries in $BIN, results in $OUT)"
build_go "$BIN/duplexload" ./cmd/duplexload
build_go "$DUPLEX_BIN" .
ensure_centrifugo
if has_word "$TARGETS" nats2 && [[ ! -x $NATS_BIN ]]; then
	echo "!! missing $NATS_BIN; no nats2" >&2
	TARGETS=${TARGETS//nats2/}
fi
CF_CONF=$OUT/centrifugo.json
write_cf_conf "$CF_CONF" '"channel": {"namespaces": [{"name": "live", "allow_subscribe_for_client": true, "allow_publish_for_subscriber": true, "allow_publish_for_client": true}]},'

start_duplex() { # port log namespaces [nats]
	port_unused duplex "$1" || return 1
	local extra=()
	[[ ${4:-} == nats ]] && extra=(BROKER=nats NATS_URL=nats://127.0.0.1:$NATS_PORT NATS_REPLICAS=1 NATS_STARTUP=fail)
	env HOST=127.0.0.1 PORT="$1" API_KEY="$KEY" MAX_CONNECTIONS=20000 MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 \
		NAMESPACES="{$3}}" "${extra[@]}" "$DUPLEX_BIN" >"$2" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_server duplex "$1" "$2" 0
}

# start TARGET BASE: starts the target's processes; sets URLS, PID1, PIDS_ARG.
start() {
	local name=$1 base=$2
	PIDS_ARG=""
	case $name in
	duplex | duplex-deflate) start_duplex "$DUPLEX_PORT" "$base.server.log" "$LIVE_NS"; URLS=ws://127.0.0.1:$DUPLEX_PORT/realtime ;;
	duplex-off) start_duplex "$DUPLEX_PORT" "$base.server.log" "$LIVE_NS,\"flow_tick\":\"0s\""; URLS=ws://127.0.0.1:$DUPLEX_PORT/realtime ;;
	nats2)
		start_nats "$base.nats.log"
		start_duplex "$DUPLEX_PORT" "$base.node1.log" "$LIVE_NS" nats
		start_duplex "$DUPLEX_PORT2" "$base.node2.log" "$LIVE_NS" nats
		URLS=ws://127.0.0.1:$DUPLEX_PORT/realtime,ws://127.0.0.1:$DUPLEX_PORT2/realtime
		PIDS_ARG="node2=${PIDS[1]},nats=$NATS_PID"
		;;
	centrifugo)
		port_unused centrifugo "$CF_PORT"
		"$CF_BIN" --config "$CF_CONF" >"$base.server.log" 2>&1 &
		SERVER_PID=$!
		PIDS+=("$SERVER_PID")
		wait_server centrifugo "$CF_PORT" "$base.server.log" 0
		URLS=ws://127.0.0.1:$CF_PORT/connection/websocket
		;;
	esac
	PID1=${PIDS[0]}
	sleep 1 # let the runtimes settle
}

TSV=$OUT/live.tsv
printf 'load\tround\ttarget\tcores\tcores_all\trss_kb\tdeliv_per_viewer_s\tp50_ms\tp99_ms\town_min\tprio_min\tfair_min\tfair_max\troom_s\tshown_s\tmissed\tdisconnects\taccepted\trejected\twire_b_per_conn_s\n' >"$TSV"
echo "== live: loads [$LOADS] x $ROUNDS rounds x [$TARGETS], $SIZE-byte comments, $PRIO priority publishers x $PRIORATE/s, warmup $WARMUP, duration $DURATION"
for l in $LOADS; do
	IFS=x read -r viewers senders rate <<<"$l"
	for round in $(seq "$ROUNDS"); do
		for name in $TARGETS; do
			base="$OUT/live-$l-$name-$round"
			start "$name" "$base"
			target=duplex
			[[ $name == centrifugo ]] && target=centrifugo
			extra=()
			[[ -n $PIDS_ARG ]] && extra=(-pids "$PIDS_ARG")
			# shellcheck disable=SC2046 # deflate_args: no flag or one word
			LOAD_AGAINST=$name run_load "$base.json" "$base.load.log" live -target "$target" -url "$URLS" \
				-api-key "$KEY" -viewers "$viewers" -senders "$senders" -rate "$rate" -prio-senders "$PRIO" -prio-rate "$PRIORATE" \
				-size "$SIZE" -warmup "$WARMUP" -duration "$DURATION" -server-pid "$PID1" "${extra[@]}" $(deflate_args "$name")
			stop_all
			jq -r --arg l "$l" --arg r "$round" --arg n "$name" \
				'[$l, $r, $n, (.server.cores // 0 | . * 100 | round / 100),
				  (([.server.cores // 0] + [.processes[]?.cores]) | add | . * 100 | round / 100),
				  (.server.rss_kb // 0), (.deliveries_per_viewer_per_s * 10 | round / 10),
				  (.latency_us.p50 / 1000 | round), (.latency_us.p99 / 1000 | round),
				  (.own_share_min * 1000 | round / 10), (.prio_delivered_min * 1000 | round / 10),
				  (.fair_share_min * 100 | round / 100), (.fair_share_max * 100 | round / 100),
				  (.room_per_s | round), (.shown_per_s | round), .missed, .disconnects, .accepted, .rejected,
				  (.wire_bytes_per_conn_per_s // 0 | round)] | @tsv' "$base.json" |
				tee -a "$TSV"
			sleep 1
		done
	done
done

echo
echo "== medians over $ROUNDS round(s) (cores: server, or node 1; cores_all adds node 2 and NATS)"
printf '%-14s %-14s %6s %9s %9s %10s %7s %7s %7s %7s %9s %6s %9s\n' load target cores cores_all rss_kB deliv/v/s p50_ms p99_ms own_% prio_% fair disc wire_B/c/s
for l in $LOADS; do
	for name in $TARGETS; do
		cond="\$1 == \"$l\" && \$3 == \"$name\""
		printf '%-14s %-14s %6s %9s %9s %10s %7s %7s %7s %7s %4s-%-4s %6s %9s\n' "$l" "$name" \
			"$(median "$TSV" 4 "$cond")" "$(median "$TSV" 5 "$cond")" "$(median "$TSV" 6 "$cond")" "$(median "$TSV" 7 "$cond")" \
			"$(median "$TSV" 8 "$cond")" "$(median "$TSV" 9 "$cond")" "$(median "$TSV" 10 "$cond")" "$(median "$TSV" 11 "$cond")" \
			"$(median "$TSV" 12 "$cond")" "$(median "$TSV" 13 "$cond")" "$(sum_col "$TSV" 17 "$cond")" "$(median "$TSV" 20 "$cond")"
	done
done
echo
echo "raw results: $OUT"
echo "chart: go run ./bench/chart -dir $OUT -include '^live-' -metric server.cores -title 'Live room: server CPU (lower is better)' -unit cores -o docs/live-cpu.svg"
