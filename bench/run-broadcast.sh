#!/usr/bin/env bash
# Broadcast and idle-memory benchmark: duplex against Centrifugo v6, both
# driven by cmd/duplexload over loopback, interleaved (duplex, centrifugo,
# duplex, ...) so machine noise hits both alike.
#
#   bench/run-broadcast.sh [-r ROUNDS] [-d DURATION] [-w WARMUP] [-s SIZE]
#                          [-L "SUBSxRATE ..."] [-I IDLE_CONNS] [-S SETTLE]
#                          [-T "duplex centrifugo"] [-o OUTDIR]
#
# For every load SUBSxRATE (default "1000x100 10000x10") and round, each
# target is started fresh, measured with
#   duplexload broadcast -target T -subs SUBS -rate RATE -size SIZE
#             -warmup WARMUP -duration DURATION -server-pid PID -json
# and stopped. Then, per round and target, a fresh server is measured with
#   duplexload idle -target T -conns IDLE_CONNS -settle SETTLE -server-pid PID -json
# (-I 0 skips it). At the end it prints every run, the medians per target
# and the ratios duplex/centrifugo (ratio of medians, and the median of the
# per-round ratios).
#
# duplex: `go build -o $DUPLEX_BIN .` (at the current tree), default config except HOST, PORT,
# API_KEY and MAX_CONNECTIONS=20000; channel push:bench.
# Centrifugo: $CF_BIN, built once with
#   GOBIN=/tmp/cfbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# if missing; config: client.insecure, http_api.key, its own port,
# prometheus on (for go_goroutines), usage stats off; channel bench. If it
# cannot be built or started, the script says so and measures duplex alone.
#
# Environment: DUPLEX_PORT (9013), CF_PORT (9014), DUPLEX_BIN (built into the temporary binary directory),
# CF_BIN (/tmp/cfbin/centrifugo), API_KEY (bench-key).
# Everything it starts is stopped on exit, including on Ctrl-C.
set -euo pipefail

ROUNDS=3
DURATION=10s
WARMUP=2s
SIZE=64
LOADS="1000x100 10000x10"
IDLE=10000
SETTLE=10s
TARGETS="duplex centrifugo"
OUT=""
while getopts "r:d:w:s:L:I:S:T:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	L) LOADS=$OPTARG ;;
	I) IDLE=$OPTARG ;;
	S) SETTLE=$OPTARG ;;
	T) TARGETS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 50 ]] || { echo "-r must be 1..50" >&2; exit 2; }
[[ $IDLE =~ ^[0-9]+$ && $IDLE -le 19000 ]] || { echo "-I must be 0..19000 (file limit 20000)" >&2; exit 2; }
for l in $LOADS; do
	[[ $l =~ ^[0-9]+x[0-9.]+$ ]] || { echo "bad load $l (want SUBSxRATE)" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUPLEX_PORT=${DUPLEX_PORT:-9013}
CF_PORT=${CF_PORT:-9014}
CF_BIN=${CF_BIN:-/tmp/cfbin/centrifugo}
CF_VERSION=v6.9.1
KEY=${API_KEY:-bench-key}
BIN=$(mktemp -d /tmp/duplex-bcast.XXXXXX)
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

# The load tool holds one descriptor per connection; so does each server.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "== open-file limit $(ulimit -n)"

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
  "prometheus": {"enabled": true},
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
	duplex) HOST=127.0.0.1 PORT=$port API_KEY=$KEY MAX_CONNECTIONS=20000 "$DUPLEX_BIN" >"$log" 2>&1 & ;;
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
			sleep 1 # let the runtime settle before any baseline
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
		stop_server
	else
		echo "!! Centrifugo does not start here; measuring duplex only" >&2
		SERVER_PID=""
		TARGETS=${TARGETS//centrifugo/}
		TARGETS=$(echo $TARGETS)
	fi
fi

load() { # name out-json out-log args...
	local json=$2 log=$3
	shift 3
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

BTSV=$OUT/broadcast.tsv
ITSV=$OUT/idle.tsv
printf 'load\tround\ttarget\tdeliveries_per_s\tp50_us\tp99_us\tmax_us\tlost\tdup\tcpu_s_per_m\trss_kb\tsubs_open\tpublish_rate\tdisconnects\tloader_cpu_s\n' >"$BTSV"
printf 'round\ttarget\tconns_alive\trss_base_kb\trss_kb\trss_per_conn_b\tgoroutines_per_conn\tconnect_rate\tdisconnects\n' >"$ITSV"

echo "== broadcast: loads [$LOADS] x $ROUNDS rounds x [$TARGETS], $SIZE-byte data, warmup $WARMUP, duration $DURATION"
printf '%-10s %-5s %-10s %11s %8s %8s %8s %6s %5s %9s %9s\n' load round target deliv/s p50_us p99_us max_us lost dup cpu_s/M rss_kB
for l in $LOADS; do
	subs=${l%x*}
	rate=${l#*x}
	for round in $(seq "$ROUNDS"); do
		for name in $TARGETS; do
			base="$OUT/bcast-$l-$name-$round"
			start_server "$name" "$base.server.log"
			load "$name" "$base.json" "$base.load.log" broadcast -target "$name" -url "$(url_of "$name")" \
				-api-key "$KEY" -subs "$subs" -rate "$rate" -size "$SIZE" -warmup "$WARMUP" -duration "$DURATION" \
				-server-pid "$SERVER_PID"
			stop_server
			jq -r --arg l "$l" --arg r "$round" --arg n "$name" \
				'[$l, $r, $n, (.deliveries_per_s|round), (.latency_us.p50|round), (.latency_us.p99|round), (.latency_us.max|round),
				  .lost, .duplicated, ((.server.cpu_s_per_million_deliveries // 0) * 1000 | round / 1000), (.server.rss_kb // 0),
				  .subs_open, (.publish_rate * 10 | round / 10), .disconnects, (.loader_cpu_s * 100 | round / 100)] | @tsv' "$base.json" |
				tee -a "$BTSV" |
				awk -F'\t' '{ printf "%-10s %-5s %-10s %11s %8s %8s %8s %6s %5s %9s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }'
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
			load "$name" "$base.json" "$base.load.log" idle -target "$name" -url "$(url_of "$name")" \
				-conns "$IDLE" -settle "$SETTLE" -server-pid "$SERVER_PID"
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

# median FILE FILTER_COLS... : median of column c over rows matching.
median() { # file col awk-condition
	awk -F'\t' -v c="$2" "NR > 1 && $3 { print \$c }" "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# paired FILE COL KEYCOND: median over rounds of duplex/centrifugo in the same round.
paired() { # file col round-col target-col condition
	awk -F'\t' -v c="$2" -v rc="$3" -v tc="$4" "NR > 1 && $5 { if (\$tc == \"duplex\") d[\$rc] = \$c; else if (\$tc == \"centrifugo\") v[\$rc] = \$c }
		END { for (r in d) if ((r in v) && v[r] > 0) print d[r] / v[r] }" "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "== medians over $ROUNDS rounds (lost, dup, disconnects: totals)"
printf '%-10s %-10s %11s %8s %8s %8s %6s %5s %9s %9s %6s\n' load target deliv/s p50_us p99_us max_us lost dup cpu_s/M rss_kB disc
for l in $LOADS; do
	for name in $TARGETS; do
		cond="\$1 == \"$l\" && \$3 == \"$name\""
		tot() { awk -F'\t' -v c="$1" "NR > 1 && $cond { s += \$c } END { print s + 0 }" "$BTSV"; }
		printf '%-10s %-10s %11.0f %8.0f %8.0f %8.0f %6s %5s %9.3f %9.0f %6s\n' "$l" "$name" \
			"$(median "$BTSV" 4 "$cond")" "$(median "$BTSV" 5 "$cond")" "$(median "$BTSV" 6 "$cond")" \
			"$(median "$BTSV" 7 "$cond")" "$(tot 8)" "$(tot 9)" "$(median "$BTSV" 10 "$cond")" \
			"$(median "$BTSV" 11 "$cond")" "$(tot 14)"
	done
	if [[ " $TARGETS " == *" duplex "* && " $TARGETS " == *" centrifugo "* ]]; then
		for col in 10:cpu_s_per_M 6:p99_us 5:p50_us 4:deliveries_per_s; do
			c=${col%%:*}
			d=$(median "$BTSV" "$c" "\$1 == \"$l\" && \$3 == \"duplex\"")
			b=$(median "$BTSV" "$c" "\$1 == \"$l\" && \$3 == \"centrifugo\"")
			p=$(paired "$BTSV" "$c" 2 3 "\$1 == \"$l\"")
			awk -v d="$d" -v b="$b" -v p="$p" -v n="${col#*:}" -v l="$l" \
				'BEGIN { if (b > 0) printf "  %-10s duplex/centrifugo %-16s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", l, n, d / b, d, b, p }'
		done
	fi
done
if [[ $IDLE -gt 0 ]]; then
	echo
	printf '%-10s %7s %12s %10s %10s %6s\n' target alive rss_B/conn gor/conn conn/s disc
	for name in $TARGETS; do
		cond="\$2 == \"$name\""
		printf '%-10s %7.0f %12.0f %10s %10.0f %6s\n' "$name" "$(median "$ITSV" 3 "$cond")" "$(median "$ITSV" 6 "$cond")" \
			"$(median "$ITSV" 7 "$cond")" "$(median "$ITSV" 8 "$cond")" \
			"$(awk -F'\t' "NR > 1 && $cond { s += \$9 } END { print s + 0 }" "$ITSV")"
	done
	if [[ " $TARGETS " == *" duplex "* && " $TARGETS " == *" centrifugo "* ]]; then
		for col in 6:rss_per_conn 7:goroutines_per_conn; do
			c=${col%%:*}
			d=$(median "$ITSV" "$c" "\$2 == \"duplex\"")
			b=$(median "$ITSV" "$c" "\$2 == \"centrifugo\"")
			p=$(paired "$ITSV" "$c" 1 2 "1")
			awk -v d="$d" -v b="$b" -v p="$p" -v n="${col#*:}" \
				'BEGIN { if (b > 0) printf "  idle duplex/centrifugo %-20s %.3f  (medians %g / %g); median of per-round ratios %.3f\n", n, d / b, d, b, p }'
		done
	fi
fi
echo
echo "raw results: $OUT"
