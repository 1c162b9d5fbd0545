package app

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/selfcpu"
	"github.com/duplex/duplex/realtime/protocol"
)

// joinStorm is what one storm cost: n clients subscribed one after
// another to one chat room, each staying subscribed.
type joinStorm struct {
	n          int
	deliveries uint64        // frames the hub enqueued to subscribers (Stats().Deliveries)
	lines      int           // join, leave and presence_count messages the clients received
	sentBytes  float64       // duplex_websocket_sent_bytes_total
	settle     time.Duration // first subscribe to every client knowing all n members
	cpu        time.Duration // user+system CPU of the whole test process (server and clients)
}

// runJoinStorm dials n clients, then subscribes them to channel one at a
// time (each waits for its reply, and gap paces them), and returns once every client has been
// told of the last one: its join, or a presence_count of n. That barrier is
// the storm's last event on the channel, so nothing it caused is still on
// its way when the counters are read.
func runJoinStorm(t *testing.T, s *testServer, channel string, n int, gap time.Duration) joinStorm {
	t.Helper()
	clients := make([]*rtClient, n)
	for i := range clients {
		clients[i] = dialRT(t, s, "name=m"+strconv.Itoa(i))
	}
	lastName := "m" + strconv.Itoa(n-1)
	before := s.app.hub.Stats().Deliveries
	bytesBefore := scrapeMetric(t, s, "duplex_websocket_sent_bytes_total")
	cpuBefore := selfcpu.Used()
	start := time.Now()
	for i, c := range clients {
		if gap > 0 && i > 0 {
			time.Sleep(gap) // pacing the load, not waiting for an outcome
		}
		c.Subscribe(channel)
	}
	for _, c := range clients {
		c.WaitPush("the last member's join or a count of every member", func(m protocol.ServerMessage) bool {
			return m.Channel == channel && (m.Join != nil && m.Join.Name == lastName || m.PresenceCount == n)
		})
	}
	st := joinStorm{n: n, settle: time.Since(start), cpu: selfcpu.Used() - cpuBefore}
	st.deliveries = s.app.hub.Stats().Deliveries - before
	st.sentBytes = scrapeMetric(t, s, "duplex_websocket_sent_bytes_total") - bytesBefore
	for _, c := range clients {
		for _, m := range c.AllPushes() {
			if m.Channel == channel && isPresenceEvent(m) {
				st.lines++
			}
		}
	}
	return st
}

// squareJoins is what a storm of n joins cost when every join went to
// every member as a frame of its own: the k-th joiner's join reaches the
// k-1 members before it (and itself).
func squareJoins(n int) int { return n * (n - 1) / 2 }

// TestJoinStormCostsATenthOfTheSquare is issue 10's join storm, smaller:
// 300 joins into one chat room (above the namespace's 200-member
// threshold) must cost at most 10% of the n(n-1)/2 frames that one frame
// per join per member costs, and every member must still learn how many
// are in the room.
func TestJoinStormCostsATenthOfTheSquare(t *testing.T) {
	const n = 300
	s := startServer(t, manyClientsEnv(nil))
	st := runJoinStorm(t, s, "chat:storm", n, 0)
	t.Logf("%d joins: %d deliveries (%.1f%% of %d), %d event messages, %.0f bytes sent, settled in %v",
		n, st.deliveries, 100*float64(st.deliveries)/float64(squareJoins(n)), squareJoins(n), st.lines, st.sentBytes, st.settle)
	if st.deliveries*10 > uint64(squareJoins(n)) {
		t.Errorf("%d joins cost %d deliveries, more than 10%% of %d", n, st.deliveries, squareJoins(n))
	}
}

// TestJoinStormFigures is the 2,000-join storm of docs/benchmarks.md
// (bench/run-joinstorm.sh). It runs only with DUPLEX_JOIN_STORM=N (for
// example 2000), with DUPLEX_JOIN_STORM_RATE=R joins per second at most
// (0 or unset: as fast as they go), and asserts nothing: it prints the
// figures.
//
//	DUPLEX_JOIN_STORM=2000 go test -run JoinStormFigures -v ./app/
func TestJoinStormFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DUPLEX_JOIN_STORM"))
	if n < 2 {
		t.Skip("set DUPLEX_JOIN_STORM=N (N >= 2) to measure an N-join storm")
	}
	var gap time.Duration
	if rate, _ := strconv.ParseFloat(os.Getenv("DUPLEX_JOIN_STORM_RATE"), 64); rate > 0 {
		gap = time.Duration(float64(time.Second) / rate)
	}
	s := startServer(t, manyClientsEnv(nil))
	st := runJoinStorm(t, s, "chat:storm", n, gap)
	fmt.Printf("join storm rate=%s n=%d deliveries=%d square=%d ratio=%.4f event_messages=%d sent_bytes=%.0f settle=%v process_cpu=%v\n",
		cmp.Or(os.Getenv("DUPLEX_JOIN_STORM_RATE"), "max"), n, st.deliveries, squareJoins(n), float64(st.deliveries)/float64(squareJoins(n)), st.lines, st.sentBytes,
		st.settle.Round(time.Millisecond), st.cpu.Round(time.Millisecond))
}
