#!/usr/bin/env bash
# Join storm (issue 10): N clients subscribe one after another to one chat
# room and stay, so every join reaches every member already there. It
# runs app's TestJoinStormFigures (the real app over loopback, the clients
# in the same process) on this tree and, given OLD_COMMIT, on that commit
# in a temporary worktree, interleaved for ROUNDS rounds, and prints one
# line per run: deliveries (frames the hub enqueued), join/leave/count
# messages the clients got, bytes sent, time from the first subscribe to
# every member knowing the last one, and the CPU of the whole test process
# (server and clients).
#
#   bench/run-joinstorm.sh [N (2000)] [OLD_COMMIT] [ROUNDS (1)]
#
# RATE=R in the environment paces the joins at R per second at most
# (default: as fast as one client after another gets its reply).
#
# The old commit predates presence_count and internal/selfcpu: the script
# copies selfcpu and adds that one field to its protocol.ServerMessage so
# the same test builds there (the old server never sends it).
set -euo pipefail

n=${1:-2000}
old=${2:-}
rounds=${3:-1}
root=$(git rev-parse --show-toplevel)

storm() { # dir label
	(cd "$1" && DUPLEX_JOIN_STORM=$n DUPLEX_JOIN_STORM_RATE=${RATE:-} go test -count=1 -run 'TestJoinStormFigures$' -v ./app/ |
		sed -n "s/^join storm /$2 /p")
}

olddir=
if [ -n "$old" ]; then
	tmp=$(mktemp -d)
	olddir=$tmp/old
	trap 'git -C "$root" worktree remove --force "$olddir" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
	git -C "$root" worktree add -q --detach "$olddir" "$old"
	cp "$root/app/joinstorm_test.go" "$olddir/app/"
	cp -r "$root/internal/selfcpu" "$olddir/internal/"
	sed -i 's/^\tMissed  *int .*$/&\n\tPresenceCount int `json:"presence_count,omitempty"`/' "$olddir/realtime/protocol/push.go"
	if ! grep -q 'func isPresenceEvent' "$olddir"/app/*_test.go; then
		cat >>"$olddir/app/joinstorm_test.go" <<'GO'

func isPresenceEvent(m protocol.ServerMessage) bool {
	return m.Join != nil || m.Leave != nil || m.PresenceCount != 0
}
GO
	fi
fi

echo "go: $(go version); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
for r in $(seq 1 "$rounds"); do
	echo "round $r"
	[ -n "$olddir" ] && storm "$olddir" "old($(git -C "$root" rev-parse --short "$old"))"
	storm "$root" "new($(git -C "$root" rev-parse --short HEAD))"
done
