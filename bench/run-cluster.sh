#!/usr/bin/env bash
# Several duplex nodes through NATS: 1, 2 and 3 nodes on BROKER=nats and,
# in the same run, 1 node on the memory broker, all driven by
# cmd/duplexload over loopback and interleaved per round
# (mem1, nats1, nats2, nats3, mem1, ...) so machine noise hits all alike.
#
#   bench/run-cluster.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-n SUBS]
#                        [-R RATE] [-s SIZE] [-P PUB_RATE] [-C "mem1 nats1 nats2 nats3"]
#                        [-o OUTDIR]
#
# NATS: one local nats-server ($NATS_BIN: lib.sh nats_server, built from the module graph) with JetStream
# (file storage in a fresh temporary directory), started fresh for every
# run; NATS_REPLICAS=1 to match.
#
# Fan-out (-C configs, -r rounds): SUBS subscribers (default 2000) on
# push:bench, spread round robin over the nodes, a publisher at RATE/s
# (default 100) through the API of node 1:
#   duplexload broadcast -url ws://node1/realtime,ws://node2/realtime,…
#     -api http://node1 -subs SUBS -rate RATE -size SIZE -warmup WARMUP
#     -duration DURATION -server-pid PID1 -pids node2=PID2,…,nats=PIDN -json
# Cost of the broker per publication (mem1 and nats1, -r rounds): 1
# subscriber, PUB_RATE/s (default 200), same command otherwise; CPU per
# publication is the CPU of duplex (and nats-server) over the window
# divided by the publications of the window. -P 0 skips it.
#
# It prints every run, medians per config and ratios to mem1 (ratio of
# medians, and the median of per-round ratios). Raw JSON, logs and
# cluster.tsv / pubcost.tsv land in OUTDIR.
#
# Environment: DUPLEX_BASE_PORT (9021: nodes on 9021, 9022, 9023),
# NATS_PORT (14222), NATS_BIN (nats_server in lib.sh), DUPLEX_BIN (built
# from the current tree), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3
DURATION=10s
WARMUP=2s
SUBS=2000
RATE=100
SIZE=64
PUBRATE=200
CONFIGS="mem1 nats1 nats2 nats3"
OUT=""
while getopts "r:d:w:n:R:s:P:C:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	n) SUBS=$OPTARG ;;
	R) RATE=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	P) PUBRATE=$OPTARG ;;
	C) CONFIGS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -r "$ROUNDS" 1 20
int_in -n "$SUBS" 1 15000 " (file limit 20000)"
for c in $CONFIGS; do
	[[ $c =~ ^(mem1|nats[1-3])$ ]] || { echo "bad config $c (mem1, nats1, nats2, nats3)" >&2; exit 2; }
done

BASE_PORT=${DUPLEX_BASE_PORT:-9021}
NATS_PORT=${NATS_PORT:-14222}
NATS_BIN=${NATS_BIN:-$(nats_server)} # built from the module graph (lib.sh)
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-cluster.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"

NODE_PIDS=()
NATS_PID=""
NATS_DIR=""
stop_all() {
	local p
	for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
	NODE_PIDS=()
	if [[ -n $NATS_PID ]]; then stop_pid "$NATS_PID"; NATS_PID=""; fi
	if [[ -n $NATS_DIR ]]; then rm -rf "$NATS_DIR"; NATS_DIR=""; fi
}
set_traps stop_all
require_tools go jq awk curl
[[ -n $NATS_BIN && -x $NATS_BIN ]] || { echo "no nats-server: the module build failed and none is installed (apt-get install nats-server)" >&2; exit 1; }

raise_file_limit
echo "== open-file limit $(ulimit -n); $("$NATS_BIN" --version)"

echo "== build (binaries in $BIN, results in $OUT)"
build_go "$BIN/duplexload" ./cmd/duplexload
build_go "$DUPLEX_BIN" .

start_node() { # index broker log
	local port=$((BASE_PORT + $1 - 1)) pid
	if port_open "$port"; then echo "port $port is in use" >&2; return 1; fi
	if [[ $2 == nats ]]; then
		HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 BROKER=nats \
			NATS_URL=nats://127.0.0.1:$NATS_PORT NATS_REPLICAS=1 NATS_STARTUP=fail "$DUPLEX_BIN" >"$3" 2>&1 &
	else
		HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 MAX_CONNECTIONS_PER_IP=0 CONNECT_RATE_PER_IP=0 "$DUPLEX_BIN" >"$3" 2>&1 &
	fi
	pid=$!
	NODE_PIDS+=("$pid")
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { echo "node $1 exited at start-up; log:" >&2; cat "$3" >&2; return 1; }
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null) == 200 ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "node $1 not ready within 10 s" >&2
	return 1
}

# start CONFIG BASE: starts the config's processes; sets URLS and PIDS_ARG.
start() {
	local cfg=$1 base=$2 n broker i
	n=${cfg: -1}
	broker=${cfg%?}
	[[ $broker == mem ]] && broker=memory
	if [[ $broker == nats ]]; then start_nats "$base.nats.log"; fi
	URLS=""
	for i in $(seq "$n"); do
		start_node "$i" "$broker" "$base.node$i.log"
		URLS+="${URLS:+,}ws://127.0.0.1:$((BASE_PORT + i - 1))/realtime"
	done
	PIDS_ARG=""
	for i in $(seq 2 "$n"); do PIDS_ARG+="${PIDS_ARG:+,}node$i=${NODE_PIDS[$((i - 1))]}"; done
	if [[ -n $NATS_PID ]]; then PIDS_ARG+="${PIDS_ARG:+,}nats=$NATS_PID"; fi
	sleep 1 # let the runtimes settle
}

run_one() { # cfg base subs rate
	local cfg=$1 base=$2 subs=$3 rate=$4 extra=()
	start "$cfg" "$base"
	[[ -n $PIDS_ARG ]] && extra=(-pids "$PIDS_ARG")
	run_load "$base.json" "$base.load.log" broadcast -url "$URLS" -api "http://127.0.0.1:$BASE_PORT" -api-key "$KEY" \
		-subs "$subs" -rate "$rate" -size "$SIZE" -warmup "$WARMUP" -duration "$DURATION" \
		-server-pid "${NODE_PIDS[0]}" "${extra[@]}"
	stop_all
}

# Sums over the JSON: duplex CPU (node 1 + nodeK), nats CPU.
JQ_CPU='(.server.cpu_s + ([.processes[]? | select(.label | startswith("node")) | .cpu_s] | add // 0)) as $dx
  | ([.processes[]? | select(.label == "nats") | .cpu_s] | add // 0) as $nats'

CTSV=$OUT/cluster.tsv
PTSV=$OUT/pubcost.tsv
printf 'config\tround\tdeliveries_per_s\tp50_us\tp99_us\tmax_us\tcross_p50_us\tcross_p99_us\tlost\tdup\tduplex_cpu_s\tnats_cpu_s\tduplex_cpu_s_per_m\tnats_cpu_s_per_m\ttotal_cpu_s_per_m\tpublish_rate\tpub_p50_us\tpub_p99_us\tsubs_open\tdisconnects\tloader_cpu_s\tnode1_cpu_s\n' >"$CTSV"
printf 'config\tround\tpublish_rate\tpub_p50_us\tpub_p99_us\tpub_max_us\tpublished_window\tduplex_cpu_s\tnats_cpu_s\tduplex_cpu_us_per_pub\tnats_cpu_us_per_pub\ttotal_cpu_us_per_pub\tlost\tdup\n' >"$PTSV"

echo "== fan-out: $SUBS subs over the nodes x $RATE/s via node 1, [$CONFIGS] x $ROUNDS rounds, $SIZE-byte data, warmup $WARMUP, duration $DURATION"
printf '%-6s %-5s %9s %8s %8s %9s %9s %5s %4s %8s %8s %8s %8s\n' config round deliv/s p50_us p99_us xp50_us xp99_us lost dup dx_cpu/M nats/M tot/M pub_p50
for round in $(seq "$ROUNDS"); do
	for cfg in $CONFIGS; do
		base="$OUT/fan-$cfg-$round"
		run_one "$cfg" "$base" "$SUBS" "$RATE"
		jq -r --arg c "$cfg" --arg r "$round" "$JQ_CPU"' | (.deliveries / 1e6) as $m |
			[$c, $r, (.deliveries_per_s|round), (.latency_us.p50|round), (.latency_us.p99|round), (.latency_us.max|round),
			 ((.cross_node_latency_us.p50 // 0)|round), ((.cross_node_latency_us.p99 // 0)|round), .lost, .duplicated,
			 ($dx*100|round/100), ($nats*100|round/100), ($dx/$m*1000|round/1000), ($nats/$m*1000|round/1000), (($dx+$nats)/$m*1000|round/1000),
			 (.publish_rate*10|round/10), (.publish_latency_us.p50|round), (.publish_latency_us.p99|round), .subs_open, .disconnects,
			 (.loader_cpu_s*100|round/100), (.server.cpu_s*100|round/100)] | @tsv' "$base.json" |
			tee -a "$CTSV" |
			awk -F'\t' '{ printf "%-6s %-5s %9s %8s %8s %9s %9s %5s %4s %8s %8s %8s %8s\n", $1, $2, $3, $4, $5, $7, $8, $9, $10, $13, $14, $15, $17 }'
		sleep 1
	done
done

PCONFIGS=""
if [[ $PUBRATE != 0 ]]; then
	for c in $CONFIGS; do [[ $c == mem1 || $c == nats1 ]] && PCONFIGS+=" $c"; done
fi
if [[ -n $PCONFIGS ]]; then
	echo
	echo "== broker cost per publication: 1 subscriber x $PUBRATE/s, [$PCONFIGS ] x $ROUNDS rounds"
	printf '%-6s %-5s %8s %8s %8s %8s %10s %10s %10s\n' config round pub/s p50_us p99_us max_us dx_us/pub nats_us/pub tot_us/pub
	for round in $(seq "$ROUNDS"); do
		for cfg in $PCONFIGS; do
			base="$OUT/pub-$cfg-$round"
			run_one "$cfg" "$base" 1 "$PUBRATE"
			jq -r --arg c "$cfg" --arg r "$round" "$JQ_CPU"' | (.published_window) as $n |
				[$c, $r, (.publish_rate*10|round/10), (.publish_latency_us.p50|round), (.publish_latency_us.p99|round), (.publish_latency_us.max|round),
				 $n, ($dx*100|round/100), ($nats*100|round/100), ($dx/$n*1e6|round), ($nats/$n*1e6|round), (($dx+$nats)/$n*1e6|round),
				 .lost, .duplicated] | @tsv' "$base.json" |
				tee -a "$PTSV" |
				awk -F'\t' '{ printf "%-6s %-5s %8s %8s %8s %8s %10s %10s %10s\n", $1, $2, $3, $4, $5, $6, $10, $11, $12 }'
			sleep 1
		done
	done
fi

echo
echo "== fan-out medians over $ROUNDS rounds (lost, dup, disconnects: totals)"
printf '%-6s %9s %8s %8s %9s %9s %5s %4s %5s %9s %9s %9s %8s %8s\n' config deliv/s p50_us p99_us xp50_us xp99_us lost dup disc dx_cpu/M nats/M tot/M pub_p50 pub_p99
for cfg in $CONFIGS; do
	cond="\$1 == \"$cfg\""
	printf '%-6s %9.0f %8.0f %8.0f %9.0f %9.0f %5s %4s %5s %9.3f %9.3f %9.3f %8.0f %8.0f\n' "$cfg" \
		"$(median "$CTSV" 3 "$cond")" "$(median "$CTSV" 4 "$cond")" "$(median "$CTSV" 5 "$cond")" \
		"$(median "$CTSV" 7 "$cond")" "$(median "$CTSV" 8 "$cond")" "$(sum_col "$CTSV" 9 "$cond")" "$(sum_col "$CTSV" 10 "$cond")" \
		"$(sum_col "$CTSV" 20 "$cond")" "$(median "$CTSV" 13 "$cond")" "$(median "$CTSV" 14 "$cond")" "$(median "$CTSV" 15 "$cond")" \
		"$(median "$CTSV" 17 "$cond")" "$(median "$CTSV" 18 "$cond")"
done
if has_word "$CONFIGS" mem1; then
	for cfg in $CONFIGS; do
		[[ $cfg == mem1 ]] && continue
		for col in 15:total_cpu_per_M 13:duplex_cpu_per_M 3:deliveries_per_s 5:p99_us 17:publish_p50_us; do
			c=${col%%:*}
			a=$(median "$CTSV" "$c" "\$1 == \"$cfg\"")
			b=$(median "$CTSV" "$c" "\$1 == \"mem1\"")
			p=$(paired "$CTSV" "$c" 2 1 "$cfg" mem1)
			awk -v a="$a" -v b="$b" -v p="$p" -v n="${col#*:}" -v k="$cfg" \
				'BEGIN { if (b > 0) printf "  %-6s/mem1 %-18s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", k, n, a / b, a, b, p }'
		done
	done
fi
if [[ -n $PCONFIGS ]]; then
	echo
	echo "== broker cost per publication, medians over $ROUNDS rounds"
	printf '%-6s %8s %8s %8s %8s %10s %10s %10s %5s %4s\n' config pub/s p50_us p99_us max_us dx_us/pub nats_us/pub tot_us/pub lost dup
	for cfg in $PCONFIGS; do
		cond="\$1 == \"$cfg\""
		printf '%-6s %8.1f %8.0f %8.0f %8.0f %10.0f %10.0f %10.0f %5s %4s\n' "$cfg" \
			"$(median "$PTSV" 3 "$cond")" "$(median "$PTSV" 4 "$cond")" "$(median "$PTSV" 5 "$cond")" "$(median "$PTSV" 6 "$cond")" \
			"$(median "$PTSV" 10 "$cond")" "$(median "$PTSV" 11 "$cond")" "$(median "$PTSV" 12 "$cond")" \
			"$(sum_col "$PTSV" 13 "$cond")" "$(sum_col "$PTSV" 14 "$cond")"
	done
	if has_word "$PCONFIGS" mem1 && has_word "$PCONFIGS" nats1; then
		for col in 4:publish_p50_us 5:publish_p99_us 12:total_cpu_per_pub 10:duplex_cpu_per_pub; do
			c=${col%%:*}
			a=$(median "$PTSV" "$c" "\$1 == \"nats1\"")
			b=$(median "$PTSV" "$c" "\$1 == \"mem1\"")
			p=$(paired "$PTSV" "$c" 2 1 nats1 mem1)
			awk -v a="$a" -v b="$b" -v p="$p" -v n="${col#*:}" \
				'BEGIN { if (b > 0) printf "  nats1/mem1 %-18s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", n, a / b, a, b, p }'
		done
	fi
fi
echo
echo "raw results: $OUT"
