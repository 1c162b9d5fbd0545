package app

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/selfcpu"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestPresenceBystanderFigures is issue 10's presence load, measured from
// the side: a 1,000-member chat room, 60 other connections each making
// 100 presence calls of it (one in flight per connection), and an
// unrelated echo client on /ws sending a message every millisecond (after
// the previous reply) throughout.
// It prints the echo round trips (p50, p99, max) while idle and under
// the load, and the load's duration and process CPU (server and clients
// share the process), per round and over all rounds. It runs only with
// DUPLEX_PRESENCE_BENCH=ROUNDS and asserts nothing but correctness: a
// timing here depends on the machine.
//
//	DUPLEX_PRESENCE_BENCH=5 go test -run PresenceBystanderFigures -v ./app/
func TestPresenceBystanderFigures(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("DUPLEX_PRESENCE_BENCH"))
	if rounds < 1 {
		t.Skip("set DUPLEX_PRESENCE_BENCH=ROUNDS (>= 1) to measure the presence load's bystander")
	}
	const members, callers, calls = 1000, 60, 100
	const channel = "chat:big"
	s := startServer(t, manyClientsEnv(nil))
	for i := range members {
		dialRT(t, s, "name=member"+strconv.Itoa(i)).Subscribe(channel)
	}
	echo := s.dial(t, "/ws")

	idle := echoRoundTrips(t, echo, 2*time.Second, nil)
	fmt.Printf("bystander echo idle: %s\n", describeRTTs(idle))
	var all []time.Duration
	for r := 1; r <= rounds; r++ {
		// Fresh connections each round: 100 calls are a connection's
		// whole command burst (50/s, burst 100).
		conns := make([]*websocket.Conn, callers)
		for i := range conns {
			conns[i] = s.dial(t, "/realtime")
		}
		done := make(chan struct{})
		errs := make(chan error, callers)
		var wg sync.WaitGroup
		cpu0, start := selfcpu.Used(), time.Now()
		for _, c := range conns {
			wg.Go(func() { errs <- presenceCalls(c, channel, calls, members) })
		}
		go func() { wg.Wait(); close(done) }()
		loaded := echoRoundTrips(t, echo, 0, done)
		took, cpu := time.Since(start), selfcpu.Used()-cpu0
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, loaded...)
		fmt.Printf("round %d: %d members, %d connections x %d presence calls in %v (process CPU %v); bystander echo %s\n",
			r, members, callers, calls, took.Round(time.Millisecond), cpu.Round(time.Millisecond), describeRTTs(loaded))
	}
	fmt.Printf("bystander echo under load, all rounds: %s\n", describeRTTs(all))
}

// presenceCalls makes n presence calls of channel on c, one at a time,
// and checks each reply is the result, with every member counted. It
// reads only a reply's first bytes and discards the rest unparsed, as a
// flooding client would: the load generator shares the two cores with
// the server, and decoding 6,000 member lists of 60 KB would be most of
// the CPU measured.
func presenceCalls(c *websocket.Conn, channel string, n, members int) error {
	head := make([]byte, 64)
	for id := 1; id <= n; id++ {
		cmd := protocol.EncodeCommand(protocol.Command{ID: uint64(id), Op: protocol.OpPresence, Channel: channel})
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, cmd); err != nil {
			return fmt.Errorf("presence %d: write: %w", id, err)
		}
		// Not subscribed to anything, the connection gets only replies,
		// one per frame when it reads as fast as they come; a batched
		// frame starts with the oldest reply.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, r, err := c.NextReader()
		if err != nil {
			return fmt.Errorf("presence %d: read: %w", id, err)
		}
		k, _ := io.ReadFull(r, head)
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("presence %d: read: %w", id, err)
		}
		want := `{"id":` + strconv.Itoa(id) + `,"result":{"count":` + strconv.Itoa(members) + `,`
		if !bytes.HasPrefix(head[:k], []byte(want)) {
			return fmt.Errorf("presence %d: reply starts %q, want %q", id, head[:k], want)
		}
	}
	return nil
}

// echoRoundTrips sends a message every millisecond on the echo socket and times
// each reply, for d or until stop is closed.
func echoRoundTrips(t *testing.T, c *websocket.Conn, d time.Duration, stop <-chan struct{}) []time.Duration {
	t.Helper()
	var out []time.Duration
	var until <-chan time.Time
	if d > 0 {
		until = time.After(d)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-until:
			return out
		case <-stop:
			return out
		case <-tick.C:
		}
		msg := "bystander" + strconv.Itoa(i)
		sent := time.Now()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("echo write: %v", err)
		}
		if got := readText(t, c); got != "服务端已收到消息:"+msg+"服务端发来消息: Hello,"+msg {
			t.Fatalf("echo reply %q", got)
		}
		out = append(out, time.Since(sent))
	}
}

func describeRTTs(rtts []time.Duration) string {
	if len(rtts) == 0 {
		return "no round trips"
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(s), q(0.50).Round(10*time.Microsecond),
		q(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}
