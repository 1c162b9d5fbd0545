#!/usr/bin/env bash
# Soak: MINUTES of mixed load on two duplex nodes behind nginx, sharing
# channels through a three-server NATS cluster (JetStream, NATS_REPLICAS=3),
# with one NATS server killed (SIGKILL) and started again every few minutes.
#
#   bench/soak.sh [-m MINUTES] [-R RESTART_EVERY_S] [-D NATS_DOWN_S] [-o OUTDIR] [-k] [-json]
#
# -m   minutes of load (default 10)
# -R   seconds between NATS restarts (default 180, or half the run if
#      shorter); none in the last half interval, so the end is quiet
# -D   seconds a killed NATS server stays down (default 10)
# -k   keep the cluster running after a complete run, to look into it (it
#      says how to stop it); an interrupted or failed run still stops it
# -json  print the result as one JSON object (with the machine) instead of text
#
# The cluster is deploy/cluster.sh with two node ports: nats-server built
# from the module graph (lib.sh nats_server: NATS_SERVER overrides it;
# Debian's only if the build fails), nginx with deploy/nginx.conf, the
# duplex binary built from this tree. The load is `duplexload soak` (cmd/duplexload/soak.go),
# every client through nginx:
#   - push:soak: publications through POST /api/publish with an
#     Idempotency-Key, retried with the same key on 503, 504, 502 and
#     transport errors; a subscriber on each node (direct, not through
#     nginx) checks that every acknowledged one (200) arrives exactly once;
#   - chat rooms chat:soak-N: members join, talk, leave, disconnect, return;
#   - live:soak (drop-oldest): a fast API publisher, a reader that keeps
#     up and one that reads slowly (drop-oldest must keep it connected);
#   - echo on /ws; connections opened and closed at a steady rate.
# It reports acknowledged publications lost and duplicated (goal 0 and 0),
# goroutines, RSS and heap of each node at start and end (after every
# connection closed and a settle), and errors by kind. Exit status 1 if
# an acknowledged publication was lost or duplicated.
#
# Environment: SOAK_PORT (9071: nginx; nodes on +1 and +2), SOAK_NATS_PORT
# (14241: NATS clients on it, +1, +2; routes on +2000...), DUPLEX_BIN
# (built from this tree), NATS_SERVER (built from the module graph). Raw results and every log land in OUTDIR
# (default: a temporary directory). Everything it starts is stopped on
# exit, including on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=$ROOT/deploy/cluster.sh

# Internal: `soak.sh restart-nats N` is what duplexload runs for restart N
# (WORKDIR and NATS_DOWN in the environment): NATS server (N-1)%3+1 is
# killed, stays down NATS_DOWN seconds, and is started again with the
# same flags and store. It starts and stops nothing else.
if [[ ${1:-} == restart-nats ]]; then
	[[ ${2:-} =~ ^[0-9]+$ && -n ${WORKDIR:-} ]] || { echo "usage: WORKDIR=... $0 restart-nats N" >&2; exit 2; }
	i=$((($2 - 1) % 3 + 1))
	"$CLUSTER" kill-nats "$i"
	sleep "${NATS_DOWN:-10}"
	"$CLUSTER" start-nats "$i"
	exit 0
fi

MINUTES=10
RESTART_EVERY=""
NATS_DOWN=10
OUT=""
KEEP=0
JSON=0
# -json is a long option, which getopts cannot parse: take it out first.
args=()
for a in "$@"; do
	if [[ $a == -json || $a == --json ]]; then JSON=1; else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
while getopts "m:R:D:o:kh" opt; do
	case $opt in
	m) MINUTES=$OPTARG ;;
	R) RESTART_EVERY=$OPTARG ;;
	D) NATS_DOWN=$OPTARG ;;
	o) OUT=$OPTARG ;;
	k) KEEP=1 ;;
	h) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
int_in -m "$MINUTES" 1 360
RESTART_EVERY=${RESTART_EVERY:-$((MINUTES * 30 < 180 ? MINUTES * 30 : 180))}
int_in -R "$RESTART_EVERY" 10 21600
int_in -D "$NATS_DOWN" 0 120

PORT=${SOAK_PORT:-9071}
NATS_PORT=${SOAK_NATS_PORT:-14241}
NODE_PORTS="$((PORT + 1)) $((PORT + 2))"
NATS_PORTS="$NATS_PORT $((NATS_PORT + 1)) $((NATS_PORT + 2))"
NATS_CLUSTER_PORTS="$((NATS_PORT + 2000)) $((NATS_PORT + 2001)) $((NATS_PORT + 2002))"
BIN=$(mktemp -d /tmp/duplex-soak.XXXXXX)
DUPLEX_BIN=${DUPLEX_BIN:-$BIN/duplex}
OUT=${OUT:-$BIN/results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# The cluster's PID files, logs and NATS stores: fresh each run, so every
# channel starts empty.
WORKDIR=$OUT/cluster
export WORKDIR PORT NODE_PORTS NATS_PORTS NATS_CLUSTER_PORTS NATS_DOWN

CLUSTER_UP=0
stop_all() {
	if [[ $CLUSTER_UP == 1 ]]; then
		CLUSTER_UP=0
		"$CLUSTER" down >>"$OUT/cluster.log" 2>&1 || true
	fi
}
set_traps stop_all
require_tools go jq nginx
raise_file_limit
NATS_SERVER=$(nats_server)
[[ -n $NATS_SERVER ]] || { echo "no nats-server: the module build failed and none is installed (apt-get install nats-server)" >&2; exit 1; }
export NATS_SERVER # deploy/cluster.sh runs it

say() { if [[ $JSON == 0 ]]; then echo "$@"; fi; }
say "== build (binaries in $BIN, results in $OUT); nats-server: $NATS_SERVER"
build_go "$BIN/duplexload" ./cmd/duplexload
if [[ ! -x $DUPLEX_BIN ]]; then
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$DUPLEX_BIN" .)
fi
export DUPLEX_BIN

say "== cluster: nginx 127.0.0.1:$PORT, nodes $NODE_PORTS, NATS $NATS_PORTS (logs in $WORKDIR/logs)"
for p in $PORT $NODE_PORTS $NATS_PORTS $NATS_CLUSTER_PORTS; do port_unused "soak cluster" "$p"; done
CLUSTER_UP=1 # from here on, down on exit (it stops only what it started)
"$CLUSTER" up >>"$OUT/cluster.log" 2>&1 || { cat "$OUT/cluster.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORKDIR/secrets.env"

read -r n1 n2 <<<"$NODE_PORTS"
MACHINE=$(jq -n --arg nproc "$(nproc)" --arg kernel "$(uname -r)" --arg go "$(go version)" \
	--arg nats "$("$NATS_SERVER" --version 2>&1) ($NATS_SERVER)" --arg nginx "$(nginx -v 2>&1)" \
	--arg minutes "$MINUTES" --arg every "$RESTART_EVERY" --arg down "$NATS_DOWN" \
	'{nproc: ($nproc|tonumber), kernel: $kernel, go: $go, nats_server: $nats, nginx: $nginx,
	  minutes: ($minutes|tonumber), restart_every_s: ($every|tonumber), nats_down_s: ($down|tonumber)}')
say "== machine: $(jq -r '"\(.nproc) CPUs, kernel \(.kernel), \(.go), \(.nats_server), \(.nginx)"' <<<"$MACHINE")"
say "== soak: $MINUTES min, a NATS server killed for ${NATS_DOWN}s every ${RESTART_EVERY}s"
"$BIN/duplexload" soak -url "ws://127.0.0.1:$PORT" -nodes "http://127.0.0.1:$n1,http://127.0.0.1:$n2" \
	-api-key "$API_KEY" -duration "${MINUTES}m" -restart-cmd "'$ROOT/bench/soak.sh' restart-nats" -restart-every "${RESTART_EVERY}s" \
	-json-file "$OUT/soak.json" >"$OUT/soak.txt" 2>"$OUT/soak.log" &
LOAD_PID=$! # the traps stop it first
rc=0
wait "$LOAD_PID" || rc=$?
LOAD_PID=""
if [[ $rc != 0 || ! -s $OUT/soak.json ]]; then
	echo "duplexload soak failed (exit $rc):" >&2
	cat "$OUT/soak.log" >&2
	exit 1
fi
if [[ $KEEP == 1 ]]; then
	CLUSTER_UP=0 # the traps leave it alone now
	echo "== cluster kept running: stop it with  WORKDIR=$WORKDIR $CLUSTER down" >&2
else
	stop_all
fi

jq --argjson m "$MACHINE" '. + {machine: $m}' "$OUT/soak.json" >"$OUT/result.json"
if [[ $JSON == 1 ]]; then
	cat "$OUT/result.json"
else
	cat "$OUT/soak.txt"
	echo
	echo "raw results: $OUT"
fi
bad=$(jq '.lost + .duplicated' "$OUT/soak.json")
[[ $bad == 0 ]] || exit 1
