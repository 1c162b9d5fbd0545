#!/usr/bin/env bash
# deploy/cluster.sh — the topology of deploy/compose.yaml as plain processes
# on loopback, without Docker:
#
#   3 nats-server   one cluster ("duplex") with JetStream, store dirs under
#                   $WORKDIR/nats<i>, client ports $NATS_PORTS, route ports
#                   $NATS_CLUSTER_PORTS
#   1-3 duplex nodes (3 unless NODE_PORTS says otherwise) BROKER=nats, NATS_URL listing all three servers,
#                   NATS_REPLICAS=3, NATS_STARTUP=wait,
#                   TRUSTED_PROXIES=127.0.0.1, one shared API_KEY and
#                   TOKEN_SECRET, HOST=127.0.0.1, ports $NODE_PORTS
#   nginx           deploy/nginx.conf, copied into $WORKDIR, with an
#                   upstream.conf of the three node ports, on 127.0.0.1:$PORT
#
# Usage:
#   deploy/cluster.sh up       start everything, wait until it is ready
#                              (/readyz 200 on each node, nginx answering),
#                              print the ports and PIDs
#   deploy/cluster.sh status   what runs, and is each node ready
#   deploy/cluster.sh down     stop everything this script started
#                              (SIGTERM, SIGKILL after 15 s)
#   deploy/cluster.sh kill-nats I    SIGKILL nats-server I (1..3), as a crash
#   deploy/cluster.sh start-nats I   start nats-server I again, same flags and
#                              store, and wait until it accepts clients
#                              (bench/soak.sh restarts NATS with these two)
#
# Settings (environment):
#   WORKDIR             where PID files, logs, NATS stores and the nginx
#                       config live (default: .cluster in the repo)
#   PORT                nginx's port (default 8088)
#   NODE_PORTS          the duplex ports, one node each: one to three of
#                       them (default PORT+1 PORT+2 PORT+3; bench/soak.sh
#                       runs two)
#   NATS_PORTS          NATS client ports (default 4222 4223 4224)
#   NATS_CLUSTER_PORTS  NATS route ports (default 6222 6223 6224)
#   DUPLEX_BIN          the duplex binary (default: built from this repo
#                       into $WORKDIR/duplex with go build)
#   NATS_SERVER, NGINX  the programs (default: from PATH, then /usr/sbin)
#   API_KEY, TOKEN_SECRET  shared by the nodes; generated (and kept in
#                       $WORKDIR/secrets.env) when unset
#   READY_TIMEOUT       seconds `up` waits for readiness (default 60)
# Any other duplex setting in the environment (LOG_LEVEL, PRESENCE_TTL,
# NAMESPACES, …) reaches the three nodes unchanged.
#
# Then: open http://127.0.0.1:8088/chat, or use the API:
#   . "$WORKDIR/secrets.env"; curl -H "Authorization: Bearer $API_KEY" \
#     -d '{"channel":"chat:lobby","data":{"text":"hi"}}' http://127.0.0.1:8088/api/publish
#
# e2e/cluster_test.go runs `up`, `status` and `down` of this script, and
# starts the same processes with the same settings from Go for the
# failure tests (killing nodes and NATS servers).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${WORKDIR:-$REPO/.cluster}
# status and down use the ports that up chose.
if [[ ${1:-} != up && -f $WORKDIR/cluster.env ]]; then
  # shellcheck disable=SC1091
  . "$WORKDIR/cluster.env"
fi
PORT=${PORT:-8088}
read -r -a NODE_PORTS <<<"${NODE_PORTS:-$((PORT + 1)) $((PORT + 2)) $((PORT + 3))}"
read -r -a NATS_PORTS <<<"${NATS_PORTS:-4222 4223 4224}"
read -r -a NATS_CLUSTER_PORTS <<<"${NATS_CLUSTER_PORTS:-6222 6223 6224}"
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=15

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

find_prog() { # name: path of a program from PATH or /usr/sbin
  command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true
}

for list in NODE_PORTS NATS_PORTS NATS_CLUSTER_PORTS; do
  declare -n arr=$list
  if [[ $list == NODE_PORTS ]]; then
    ((${#arr[@]} >= 1 && ${#arr[@]} <= 3)) || die "$list must hold one to three ports, got '${arr[*]}'"
  else
    ((${#arr[@]} == 3)) || die "$list must hold three ports, got '${arr[*]}'"
  fi
  for p in "${arr[@]}"; do [[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "$list: bad port '$p'"; done
  unset -n arr
done
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT: bad port '$PORT'"

# alive PIDFILE PATTERN: the PID in the file runs a program whose command
# line contains PATTERN (so a reused PID is never signalled).
alive() {
  local pid
  # nginx removes its PID file as it exits: the file may go at any time.
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$2"
}

# http_status PORT PATH: the HTTP status of GET 127.0.0.1:PORT PATH, or 000.
http_status() {
  local line
  line=$(timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    head -n1 <&3' _ "$1" "$2" 2>/dev/null) || true
  line=${line#HTTP/1.? }
  echo "${line:0:3}" | grep -E '^[0-9]{3}$' || echo 000
}

port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Pieces: nats1..3, duplex1..3, nginx. PID files in $WORKDIR/pids; nginx
# writes its own ($WORKDIR/nginx.pid, from nginx.conf's "pid nginx.pid").
pidfile() { if [[ $1 == nginx ]]; then echo "$WORKDIR/nginx.pid"; else echo "$WORKDIR/pids/$1.pid"; fi; }
pattern() {
  case $1 in
    nats*) echo "-sd $WORKDIR/$1 " ;;
    nginx) echo "-p $WORKDIR/ " ;;
  esac
}
piece_alive() {
  local f
  f=$(pidfile "$1")
  case $1 in
    duplex*) # DUPLEX_BIN may be any file: recognised by its environment
      local pid
      pid=$(cat "$f" 2>/dev/null) || return 1
      [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/environ ]] || return 1
      { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "DUPLEX_CLUSTER_PIECE=$WORKDIR/$1"
      ;;
    *) alive "$f" "$(pattern "$1")" ;;
  esac
}
# One duplex piece per NODE_PORTS entry.
NODES=()
for ((i = 1; i <= ${#NODE_PORTS[@]}; i++)); do NODES+=("duplex$i"); done
PIECES=(nats1 nats2 nats3 "${NODES[@]}" nginx)

start_nats() {
  local i=$1 routes=() j
  for j in 0 1 2; do ((j == i)) || routes+=("nats://127.0.0.1:${NATS_CLUSTER_PORTS[j]}"); done
  local name=nats$((i + 1))
  mkdir -p "$WORKDIR/$name"
  # setsid: the servers outlive this shell and ignore its terminal's ^C.
  setsid "$NATS_SERVER" -n "$name" -a 127.0.0.1 -p "${NATS_PORTS[i]}" \
    -js -sd "$WORKDIR/$name" --cluster_name duplex \
    --cluster "nats://127.0.0.1:${NATS_CLUSTER_PORTS[i]}" \
    --routes "$(IFS=,; echo "${routes[*]}")" \
    </dev/null >>"$WORKDIR/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

start_duplex() {
  local i=$1 name=duplex$((i + 1)) urls=() p
  for p in "${NATS_PORTS[@]}"; do urls+=("nats://127.0.0.1:$p"); done
  env HOST=127.0.0.1 PORT="${NODE_PORTS[i]}" BROKER=nats \
    NATS_URL="$(IFS=,; echo "${urls[*]}")" NATS_REPLICAS=3 NATS_STARTUP=wait \
    TRUSTED_PROXIES=127.0.0.1 API_KEY="$API_KEY" TOKEN_SECRET="$TOKEN_SECRET" \
    DUPLEX_CLUSTER_PIECE="$WORKDIR/$name" \
    setsid "$DUPLEX_BIN" </dev/null >>"$WORKDIR/logs/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$(pidfile "$name")"
  # $! is the forked shell until it has exec'd the binary, and only the
  # binary's environment names the piece: wait for that (a few ms; longer
  # on a loaded machine), so piece_alive does not mistake it for dead.
  local tries=0
  until piece_alive "$name" || ! kill -0 "$pid" 2>/dev/null || ((++tries > 100)); do sleep 0.05; done
}

# write_nginx_conf: deploy/nginx.conf with two changes — it listens on
# 127.0.0.1:$PORT instead of 8088, and its temp files go under $WORKDIR
# (so nginx needs no root) — and an upstream.conf of the node ports.
write_nginx_conf() {
  local conf=$WORKDIR/nginx.conf p
  grep -q '^        listen 8088;$' "$REPO/deploy/nginx.conf" || die "deploy/nginx.conf no longer has 'listen 8088;': update cluster.sh"
  sed -e "s/^        listen 8088;\$/        listen 127.0.0.1:$PORT;/" \
    -e 's/^http {$/http {\n    client_body_temp_path tmp\/body;\n    proxy_temp_path tmp\/proxy;\n    fastcgi_temp_path tmp\/fastcgi;\n    uwsgi_temp_path tmp\/uwsgi;\n    scgi_temp_path tmp\/scgi;/' \
    "$REPO/deploy/nginx.conf" >"$conf"
  mkdir -p "$WORKDIR/tmp"
  {
    echo "# Written by deploy/cluster.sh: the duplex nodes on loopback."
    for p in "${NODE_PORTS[@]}"; do echo "server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"; done
  } >"$WORKDIR/upstream.conf"
}

cmd_up() {
  NATS_SERVER=${NATS_SERVER:-$(find_prog nats-server)}
  NGINX=${NGINX:-$(find_prog nginx)}
  [[ -n $NATS_SERVER ]] || die "nats-server not found (Debian: apt-get install nats-server)"
  [[ -n $NGINX ]] || die "nginx not found (Debian: apt-get install nginx)"
  mkdir -p "$WORKDIR/pids" "$WORKDIR/logs"
  WORKDIR=$(cd "$WORKDIR" && pwd)
  local piece
  for piece in "${PIECES[@]}"; do
    ! piece_alive "$piece" || die "$piece already runs (pid $(<"$(pidfile "$piece")")); run '$0 down' first"
  done
  local p
  for p in "$PORT" "${NODE_PORTS[@]}" "${NATS_PORTS[@]}" "${NATS_CLUSTER_PORTS[@]}"; do
    ! port_open "$p" || die "port $p on 127.0.0.1 is taken"
  done

  if [[ -z ${DUPLEX_BIN:-} ]]; then
    log "building duplex into $WORKDIR/duplex"
    (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$WORKDIR/duplex" .) || die "go build failed"
    DUPLEX_BIN=$WORKDIR/duplex
  fi
  [[ -x $DUPLEX_BIN ]] || die "DUPLEX_BIN=$DUPLEX_BIN is not executable"

  if [[ -z ${API_KEY:-} || -z ${TOKEN_SECRET:-} ]]; then
    if [[ -f $WORKDIR/secrets.env ]]; then
      # shellcheck disable=SC1091
      . "$WORKDIR/secrets.env"
    fi
    API_KEY=${API_KEY:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
    TOKEN_SECRET=${TOKEN_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
  fi
  printf 'PORT=%q\nNODE_PORTS=%q\nNATS_PORTS=%q\nNATS_CLUSTER_PORTS=%q\n' \
    "$PORT" "${NODE_PORTS[*]}" "${NATS_PORTS[*]}" "${NATS_CLUSTER_PORTS[*]}" >"$WORKDIR/cluster.env"
  (umask 077 && printf 'API_KEY=%s\nTOKEN_SECRET=%s\n' "$API_KEY" "$TOKEN_SECRET" >"$WORKDIR/secrets.env")

  local i f
  for f in "$WORKDIR"/logs/*.log; do [[ -f $f ]] && mv -f "$f" "$f.1"; done
  local deadline=$((SECONDS + READY_TIMEOUT)) ready
  for i in 0 1 2; do start_nats "$i"; done
  # A node refuses to start while JetStream has no metadata leader (it
  # exits after 5 s even with NATS_STARTUP=wait), so wait for the election.
  while :; do
    ready=1
    for i in 1 2 3; do
      piece_alive "nats$i" || { tail -n 20 "$WORKDIR/logs/nats$i.log" >&2; cmd_down; die "nats$i exited"; }
      grep -qE "JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader" "$WORKDIR/logs/nats$i.log" || ready=0
    done
    ((ready)) && break
    ((SECONDS < deadline)) || { cmd_down; die "NATS elected no JetStream leader in ${READY_TIMEOUT}s; logs in $WORKDIR/logs"; }
    sleep 0.1
  done
  # One node at a time: nodes starting together on a fresh cluster race to
  # create the JetStream streams, and the losers exit ("stream …: context
  # deadline exceeded").
  for ((i = 0; i < ${#NODE_PORTS[@]}; i++)); do
    start_duplex "$i"
    until [[ $(http_status "${NODE_PORTS[i]}" /readyz) == 200 ]]; do
      piece_alive "duplex$((i + 1))" || { tail -n 20 "$WORKDIR/logs/duplex$((i + 1)).log" >&2; cmd_down; die "duplex$((i + 1)) exited"; }
      ((SECONDS < deadline)) || { cmd_down; die "duplex$((i + 1)) not ready in ${READY_TIMEOUT}s; logs in $WORKDIR/logs"; }
      sleep 0.1
    done
  done
  write_nginx_conf
  "$NGINX" -p "$WORKDIR/" -c nginx.conf -t -q 2>>"$WORKDIR/logs/nginx.log" || { cat "$WORKDIR/logs/nginx.log" >&2; cmd_down; die "nginx -t refused the config"; }
  setsid "$NGINX" -p "$WORKDIR/" -c nginx.conf </dev/null >>"$WORKDIR/logs/nginx.log" 2>&1

  # Wait: every node's /readyz 200 (connected to NATS), nginx answering.
  while :; do
    ready=1
    for piece in "${PIECES[@]}"; do
      piece_alive "$piece" || { cmd_status >&2 || true; log "$piece exited; its log:"; tail -n 20 "$WORKDIR/logs/$piece.log" >&2; cmd_down; die "start-up failed"; }
    done
    for p in "${NODE_PORTS[@]}"; do [[ $(http_status "$p" /readyz) == 200 ]] || ready=0; done
    [[ $(http_status "$PORT" /readyz) == 200 ]] || ready=0
    ((ready)) && break
    if ((SECONDS >= deadline)); then
      cmd_status >&2 || true
      cmd_down
      die "not ready after ${READY_TIMEOUT}s; logs in $WORKDIR/logs"
    fi
    sleep 0.2
  done
  echo "duplex cluster up in $WORKDIR (logs in $WORKDIR/logs, secrets in $WORKDIR/secrets.env)"
  cmd_status
  echo "open http://127.0.0.1:$PORT/chat"
}

cmd_status() {
  local piece i port state all=0 pid
  for piece in "${PIECES[@]}"; do
    case $piece in
      nats*) i=${piece#nats}; port="${NATS_PORTS[i-1]} (cluster ${NATS_CLUSTER_PORTS[i-1]})" ;;
      duplex*) i=${piece#duplex}; port=${NODE_PORTS[i-1]} ;;
      nginx) port=$PORT ;;
    esac
    if piece_alive "$piece" && pid=$(cat "$(pidfile "$piece")" 2>/dev/null); then
      state="running pid $pid"
      case $piece in
        duplex*) state+=" readyz $(http_status "${NODE_PORTS[i-1]}" /readyz)" ;;
        nginx) state+=" readyz(via nginx) $(http_status "$PORT" /readyz)" ;;
      esac
    else
      state="stopped"
      all=1
    fi
    printf '%-8s port %-22s %s\n' "$piece" "$port" "$state"
  done
  return $all
}

cmd_down() {
  local piece pids=() f pid
  # nginx first (no new clients), then the nodes (they drain and close
  # their sockets with 1001), then NATS.
  for group in "nginx" "${NODES[*]}" "nats1 nats2 nats3"; do
    pids=()
    for piece in $group; do
      f=$(pidfile "$piece")
      if piece_alive "$piece" && pid=$(cat "$f" 2>/dev/null); then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid:$piece")
      fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT)) left
    while ((${#pids[@]})); do
      left=()
      for e in "${pids[@]}"; do piece_alive "${e#*:}" && left+=("$e"); done
      pids=("${left[@]+"${left[@]}"}")
      ((${#pids[@]})) || break
      if ((SECONDS >= deadline)); then
        for e in "${pids[@]}"; do log "${e#*:} ignored SIGTERM for ${STOP_TIMEOUT}s: killing"; kill -KILL "${e%%:*}" 2>/dev/null || true; done
        break
      fi
      sleep 0.1
    done
    for piece in $group; do rm -f "$WORKDIR/pids/$piece.pid"; done
  done
  echo "duplex cluster in $WORKDIR stopped"
}

# kill-nats I / start-nats I: one NATS server down and up again, for
# failure drills (bench/soak.sh). start-nats reuses start_nats, so the
# server comes back with its store, its routes and its PID file.
nats_index() {
  [[ ${1:-} =~ ^[1-3]$ ]] || die "want a NATS server number 1..3, got '${1:-}'"
}
cmd_kill_nats() {
  nats_index "$1"
  local f pid
  f=$(pidfile "nats$1")
  piece_alive "nats$1" && pid=$(cat "$f" 2>/dev/null) || die "nats$1 is not running"
  kill -KILL "$pid" 2>/dev/null || true
  local tries=0
  while piece_alive "nats$1" && ((++tries < 100)); do sleep 0.05; done
  rm -f "$f"
  echo "nats$1 (pid $pid) killed"
}
cmd_start_nats() {
  nats_index "$1"
  NATS_SERVER=${NATS_SERVER:-$(find_prog nats-server)}
  [[ -n $NATS_SERVER ]] || die "nats-server not found"
  ! piece_alive "nats$1" || die "nats$1 already runs"
  local i=$(($1 - 1)) deadline=$((SECONDS + READY_TIMEOUT))
  start_nats "$i"
  until port_open "${NATS_PORTS[i]}"; do
    piece_alive "nats$1" || { tail -n 20 "$WORKDIR/logs/nats$1.log" >&2; die "nats$1 exited"; }
    ((SECONDS < deadline)) || die "nats$1 not accepting clients after ${READY_TIMEOUT}s"
    sleep 0.1
  done
  echo "nats$1 (pid $(<"$(pidfile "nats$1")")) started"
}

[[ -d $WORKDIR || ${1:-} == up ]] || { [[ ${1:-} == status || ${1:-} == down || ${1:-} == *-nats ]] && die "no cluster in $WORKDIR"; }
case ${1:-} in
  up) cmd_up ;;
  down) mkdir -p "$WORKDIR" && WORKDIR=$(cd "$WORKDIR" && pwd) && cmd_down ;;
  status) WORKDIR=$(cd "$WORKDIR" && pwd) && cmd_status ;;
  kill-nats) WORKDIR=$(cd "$WORKDIR" && pwd) && cmd_kill_nats "${2:-}" ;;
  start-nats) WORKDIR=$(cd "$WORKDIR" && pwd) && cmd_start_nats "${2:-}" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
