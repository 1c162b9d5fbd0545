#!/usr/bin/env bash
# Connection-rate benchmark: duplex against Centrifugo v6, both driven by
# `duplexload connect` over loopback, interleaved so machine noise hits both
# alike (round 1: duplex then centrifugo, round 2: centrifugo then duplex, ...).
#
#   bench/run-connect.sh [-r ROUNDS] [-n CONNS] [-k INFLIGHT] [-H HOLD]
#                        [-T "duplex centrifugo"] [-o OUTDIR]
#
# Defaults: 5 rounds of 5,000 connections with 100 in flight, each held 1 s.
# For every round and target a fresh server is started, measured with
#   duplexload connect -target T -conns CONNS -inflight INFLIGHT -hold HOLD -server-pid PID -json
# and stopped. Each connection is timed from the start of its TCP connect
# to the reply to its subscribe command ("subscribed"). At the end the
# script prints every run, the medians per target and the ratios
# duplex/centrifugo (ratio of medians, and the median of the per-round
# ratios).
#
# duplex: `go build -o $DUPLEX_BIN .` at the current tree, started with
#   HOST=127.0.0.1 PORT=$DUPLEX_PORT API_KEY=$KEY MAX_CONNECTIONS=20000 LOG_LEVEL=warn
# (LOG_LEVEL=warn: duplex logs each connection at info, Centrifugo does not;
# everything else is duplex's default); channel push:bench.
# Centrifugo: $CF_BIN, built once with
#   GOBIN=/tmp/cfbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# if missing; config: client.insecure, http_api.key, its own port, usage
# stats off, log level warn; channel bench. If it cannot be built or
# started, the script says so and measures duplex alone.
#
# Environment: DUPLEX_PORT (9041), CF_PORT (9042), DUPLEX_BIN (built into
# the temporary directory), CF_BIN (/tmp/cfbin/centrifugo), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail

ROUNDS=5
CONNS=5000
INFLIGHT=100
HOLD=1s
TARGETS="duplex centrifugo"
OUT=""
while getopts "r:n:k:H:T:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	n) CONNS=$OPTARG ;;
	k) INFLIGHT=$OPTARG ;;
	H) HOLD=$OPTARG ;;
	T) TARGETS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 50 ]] || { echo "-r must be 1..50" >&2; exit 2; }
[[ $CONNS =~ ^[0-9]+$ && $CONNS -ge 1 && $CONNS -le 19000 ]] || { echo "-n must be 1..19000 (file limit 20000)" >&2; exit 2; }
[[ $INFLIGHT =~ ^[0-9]+$ && $INFLIGHT -ge 1 && $INFLIGHT -le 1024 ]] || { echo "-k must be 1..1024" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUPLEX_PORT=${DUPLEX_PORT:-9041}
CF_PORT=${CF_PORT:-9042}
CF_BIN=${CF_BIN:-/tmp/cfbin/centrifugo}
CF_VERSION=v6.9.1
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-connect.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
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
	for _ in $(seq 100); do # up to 10 s, then force
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap 'stop_load; stop_server' EXIT
trap 'stop_load; stop_server; exit 130' INT TERM

for tool in go jq awk; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

# The load tool holds one descriptor per connection; so does each server
# (they inherit this limit).
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "== open-file limit $(ulimit -n)"
[[ $(ulimit -n) -gt $((CONNS + 200)) ]] || { echo "open-file limit too low for $CONNS connections" >&2; exit 1; }

echo "== build (binaries in $BIN, results in $OUT)"
(cd "$ROOT" && go build -o "$BIN/duplexload" ./cmd/duplexload)
if [[ " $TARGETS " == *" duplex "* ]]; then
	(cd "$ROOT" && go build -o "$DUPLEX_BIN" .)
fi
if [[ " $TARGETS " == *" centrifugo "* && ! -x $CF_BIN ]]; then
	echo "== building Centrifugo $CF_VERSION into $(dirname "$CF_BIN") (several minutes the first time)"
	if ! (cd /tmp && GOBIN=$(dirname "$CF_BIN") go install "github.com/centrifugal/centrifugo/v6@$CF_VERSION") >"$OUT/centrifugo-build.log" 2>&1 ||
		[[ ! -x $CF_BIN ]]; then
		echo "!! Centrifugo could not be built (see $OUT/centrifugo-build.log); measuring duplex only" >&2
		TARGETS=${TARGETS//centrifugo/}
	fi
fi
TARGETS=$(echo $TARGETS) # trim
[[ -n $TARGETS ]] || { echo "no target left" >&2; exit 1; }

CF_CONF=$OUT/centrifugo.json
cat >"$CF_CONF" <<EOF
{
  "client": {"insecure": true},
  "http_api": {"key": "$KEY"},
  "http_server": {"address": "127.0.0.1", "port": $CF_PORT},
  "log": {"level": "warn"},
  "usage_stats": {"disabled": true}
}
EOF

port_of() {
	case $1 in
	duplex) echo "$DUPLEX_PORT" ;;
	centrifugo) echo "$CF_PORT" ;;
	esac
}
url_of() {
	case $1 in
	duplex) echo "ws://127.0.0.1:$DUPLEX_PORT/realtime" ;;
	centrifugo) echo "ws://127.0.0.1:$CF_PORT/connection/websocket" ;;
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
	duplex) HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 LOG_LEVEL=warn "$DUPLEX_BIN" >"$log" 2>&1 & ;;
	centrifugo) "$CF_BIN" --config "$CF_CONF" >"$log" 2>&1 & ;;
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
			sleep 1 # let the runtime settle
			return 0
		fi
		sleep 0.1
	done
	echo "$name did not open port $port within 10 s" >&2
	return 1
}

# Centrifugo must start here, or it is dropped (with a message) before the runs.
if [[ " $TARGETS " == *" centrifugo "* ]]; then
	if start_server centrifugo "$OUT/centrifugo-check.log"; then
		"$CF_BIN" version >"$OUT/centrifugo-version.txt" 2>&1 || true
		stop_server
	else
		echo "!! Centrifugo does not start here; measuring duplex only" >&2
		SERVER_PID=""
		TARGETS=${TARGETS//centrifugo/}
		TARGETS=$(echo $TARGETS)
	fi
fi

load() { # out-json out-log args...
	local json=$1 log=$2
	shift 2
	"$BIN/duplexload" "$@" -json >"$json" 2>"$log" &
	LOAD_PID=$!
	local rc=0
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=""
	if [[ $rc != 0 ]]; then
		echo "duplexload failed (exit $rc):" >&2
		cat "$log" >&2
		return 1
	fi
}

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
		load "$base.json" "$base.load.log" connect -target "$name" -url "$(url_of "$name")" \
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

median() { # file col awk-condition
	awk -F'\t' -v c="$2" "NR > 1 && $3 { print \$c }" "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
paired() { # file col: median over rounds of duplex/centrifugo in the same round
	awk -F'\t' -v c="$2" 'NR > 1 { if ($2 == "duplex") d[$1] = $c; else if ($2 == "centrifugo") v[$1] = $c }
		END { for (r in d) if ((r in v) && v[r] > 0) print d[r] / v[r] }' "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "== medians over $ROUNDS rounds (errors, disconnects: totals)"
printf '%-10s %9s %9s %9s %9s %6s %5s %9s %9s %9s\n' target conn/s p50_us p99_us max_us err disc cpu_s/1k tcp_p99 upg_p99
for name in $TARGETS; do
	cond="\$2 == \"$name\""
	tot() { awk -F'\t' -v c="$1" "NR > 1 && $cond { s += \$c } END { print s + 0 }" "$TSV"; }
	printf '%-10s %9.0f %9.0f %9.0f %9.0f %6s %5s %9.3f %9.0f %9.0f\n' "$name" \
		"$(median "$TSV" 3 "$cond")" "$(median "$TSV" 4 "$cond")" "$(median "$TSV" 5 "$cond")" "$(median "$TSV" 6 "$cond")" \
		"$(tot 8)" "$(tot 9)" "$(median "$TSV" 10 "$cond")" "$(median "$TSV" 14 "$cond")" "$(median "$TSV" 15 "$cond")"
done
if [[ " $TARGETS " == *" duplex "* && " $TARGETS " == *" centrifugo "* ]]; then
	for col in 3:conns_per_s 4:p50_us 5:p99_us 10:cpu_s_per_1000; do
		c=${col%%:*}
		d=$(median "$TSV" "$c" '$2 == "duplex"')
		b=$(median "$TSV" "$c" '$2 == "centrifugo"')
		p=$(paired "$TSV" "$c")
		awk -v d="$d" -v b="$b" -v p="$p" -v n="${col#*:}" \
			'BEGIN { if (b > 0) printf "  duplex/centrifugo %-16s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
	done
	echo "  goal: conns_per_s ratio >= 1.0"
fi
echo
echo "raw results: $OUT"
