package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/realtime/protocol"
)

// replyTimeout bounds how long a test waits for one reply or push.
const replyTimeout = 5 * time.Second

// rtClient is a small /realtime test client: commands with ids whose
// replies are awaited by id, and every push collected in arrival order.
// One goroutine reads the socket; it can be paused to play a client that
// stops reading.
type rtClient struct {
	t    *testing.T
	name string
	conn *websocket.Conn

	wmu    sync.Mutex // serializes writes
	nextID uint64     // under wmu

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever state changes
	replies  map[uint64]protocol.ServerMessage
	anonErrs []protocol.Error         // error replies without an id
	pushes   []protocol.ServerMessage // publications, join/leave, missed
	closeErr error                    // set when reading ended
	paused   bool                     // the reader waits before its next read
	resume   chan struct{}            // closed by resumeReading
	readDone chan struct{}            // closed when the reader has ended
}

// dialRT opens /realtime with the given query (for example "name=李旺")
// and starts the reader. It fails the test if the upgrade is refused.
func dialRT(t *testing.T, s *testServer, query string) *rtClient {
	t.Helper()
	conn, status, err := tryDialRT(s, query)
	if err != nil {
		t.Fatalf("dial /realtime?%s: %v (HTTP %d)", query, err, status)
	}
	return newRTClient(t, conn, query)
}

// newRTClient starts the reader of an open /realtime connection.
func newRTClient(t *testing.T, conn *websocket.Conn, query string) *rtClient {
	t.Helper()
	c := &rtClient{
		t: t, name: query, conn: conn,
		changed:  make(chan struct{}),
		replies:  make(map[uint64]protocol.ServerMessage),
		readDone: make(chan struct{}),
	}
	go c.readLoop()
	t.Cleanup(func() {
		c.conn.Close()
		select {
		case <-c.readDone:
		case <-time.After(replyTimeout):
			t.Errorf("%s: reader did not end", c.name)
		}
	})
	return c
}

// tryDialRT dials /realtime and returns the HTTP status of a refusal.
func tryDialRT(s *testServer, query string) (*websocket.Conn, int, error) {
	d := *websocket.DefaultDialer
	d.HandshakeTimeout = replyTimeout
	u := s.wsURL("/realtime")
	if query != "" {
		u += "?" + query
	}
	conn, resp, err := d.Dial(u, nil)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return conn, status, err
}

func (c *rtClient) readLoop() {
	defer close(c.readDone)
	for {
		c.mu.Lock()
		for c.paused {
			ch := c.resume
			c.mu.Unlock()
			<-ch
			c.mu.Lock()
		}
		c.mu.Unlock()

		kind, data, err := c.conn.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.closeErr = err
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		if kind != websocket.TextMessage {
			c.closeErr = fmt.Errorf("server sent a non-text message (type %d)", kind)
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		protocol.SplitLines(data, func(line []byte) bool {
			m, err := protocol.DecodeServerMessage(line)
			if err != nil {
				c.closeErr = fmt.Errorf("undecodable server message %q: %v", line, err)
				return false
			}
			switch {
			case m.ID != 0:
				c.replies[m.ID] = m
			case m.Error != nil:
				c.anonErrs = append(c.anonErrs, *m.Error)
			default:
				c.pushes = append(c.pushes, m)
			}
			return true
		})
		c.notifyLocked()
		c.mu.Unlock()
	}
}

func (c *rtClient) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// pauseReading makes the reader stop before its next read (a read already
// waiting for a frame still takes that one frame).
func (c *rtClient) pauseReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		c.paused = true
		c.resume = make(chan struct{})
	}
}

func (c *rtClient) resumeReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		c.paused = false
		close(c.resume)
	}
}

// waitState polls cond (called with the client's lock held) until it holds,
// the reader ends, or timeout passes; it reports whether cond held.
func (c *rtClient) waitState(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond()
		ended := c.closeErr != nil
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		if ended {
			return false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// sendRaw writes one raw text frame.
func (c *rtClient) sendRaw(frame string) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// send writes cmd with a fresh id (cmd.ID is overwritten) and returns it.
func (c *rtClient) send(cmd protocol.Command) uint64 {
	c.t.Helper()
	c.wmu.Lock()
	c.nextID++
	cmd.ID = c.nextID
	c.wmu.Unlock()
	c.sendRaw(string(protocol.EncodeCommand(cmd)))
	return cmd.ID
}

// sendBatch writes several commands in one newline-separated frame and
// returns their ids in order.
func (c *rtClient) sendBatch(cmds []protocol.Command) []uint64 {
	c.t.Helper()
	ids := make([]uint64, len(cmds))
	lines := make([]string, len(cmds))
	c.wmu.Lock()
	for i := range cmds {
		c.nextID++
		cmds[i].ID = c.nextID
		ids[i] = c.nextID
		lines[i] = string(protocol.EncodeCommand(cmds[i]))
	}
	c.wmu.Unlock()
	c.sendRaw(strings.Join(lines, "\n"))
	return ids
}

// await returns the reply to id, failing the test after replyTimeout.
func (c *rtClient) await(id uint64) protocol.ServerMessage {
	c.t.Helper()
	var m protocol.ServerMessage
	if !c.waitState(replyTimeout, func() bool {
		var ok bool
		m, ok = c.replies[id]
		return ok
	}) {
		c.t.Fatalf("%s: no reply to command %d (reader: %v)", c.name, id, c.readErr())
	}
	return m
}

// call sends cmd and awaits its reply.
func (c *rtClient) call(cmd protocol.Command) protocol.ServerMessage {
	c.t.Helper()
	return c.await(c.send(cmd))
}

// ok sends cmd, requires a result and decodes it into out (may be nil).
func (c *rtClient) ok(cmd protocol.Command, out any) {
	c.t.Helper()
	m := c.call(cmd)
	if m.Error != nil {
		c.t.Fatalf("%s: %s %s: error %s: %s", c.name, cmd.Op, cmd.Channel, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			c.t.Fatalf("%s: %s result %s: %v", c.name, cmd.Op, m.Result, err)
		}
	}
}

// fails sends cmd and requires an error reply with code.
func (c *rtClient) fails(cmd protocol.Command, code protocol.Code) protocol.Error {
	c.t.Helper()
	m := c.call(cmd)
	return c.wantErr(m, code, string(cmd.Op)+" "+cmd.Channel)
}

func (c *rtClient) wantErr(m protocol.ServerMessage, code protocol.Code, what string) protocol.Error {
	c.t.Helper()
	if m.Error == nil {
		c.t.Fatalf("%s: %s: got result %s, want error %s", c.name, what, m.Result, code)
	}
	if m.Error.Code != code {
		c.t.Fatalf("%s: %s: got error %s (%s), want %s", c.name, what, m.Error.Code, m.Error.Message, code)
	}
	if m.Error.Message == "" {
		c.t.Errorf("%s: %s: error %s has no message", c.name, what, code)
	}
	return *m.Error
}

// subscribe subscribes and returns the result.
func (c *rtClient) subscribe(channel string) protocol.SubscribeResult {
	c.t.Helper()
	var r protocol.SubscribeResult
	c.ok(protocol.Command{Op: protocol.OpSubscribe, Channel: channel}, &r)
	if r.Epoch == "" {
		c.t.Fatalf("%s: subscribe %s: no epoch in result", c.name, channel)
	}
	return r
}

// publish publishes data as this client and returns the new position.
func (c *rtClient) publish(channel, data string) protocol.PublishResult {
	c.t.Helper()
	var r protocol.PublishResult
	c.ok(protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: json.RawMessage(data)}, &r)
	return r
}

// ping proves the connection still works.
func (c *rtClient) ping() {
	c.t.Helper()
	m := c.call(protocol.Command{Op: protocol.OpPing})
	if m.Error != nil || string(m.Result) != "{}" {
		c.t.Fatalf("%s: ping: %+v", c.name, m)
	}
}

// pubs returns the publications pushed on channel so far, in order.
func (c *rtClient) pubs(channel string) []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.ServerMessage
	for _, m := range c.pushes {
		if m.Channel == channel && !isPresenceEvent(m) {
			out = append(out, m)
		}
	}
	return out
}

// allPushes returns a copy of every push so far.
func (c *rtClient) allPushes() []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.ServerMessage(nil), c.pushes...)
}

// waitPubs waits until n publications of channel have arrived.
func (c *rtClient) waitPubs(channel string, n int, timeout time.Duration) []protocol.ServerMessage {
	c.t.Helper()
	if !c.waitState(timeout, func() bool { return c.countPubsLocked(channel) >= n }) {
		c.t.Fatalf("%s: got %d publications on %s, want %d (reader: %v)",
			c.name, len(c.pubs(channel)), channel, n, c.readErr())
	}
	return c.pubs(channel)
}

// waitOffset waits until a publication of channel with offset >= off arrives.
func (c *rtClient) waitOffset(channel string, off uint64, timeout time.Duration) bool {
	return c.waitState(timeout, func() bool {
		for i := len(c.pushes) - 1; i >= 0; i-- {
			if m := c.pushes[i]; m.Channel == channel && !isPresenceEvent(m) && m.Offset >= off {
				return true
			}
		}
		return false
	})
}

func (c *rtClient) countPubsLocked(channel string) int {
	n := 0
	for _, m := range c.pushes {
		if m.Channel == channel && !isPresenceEvent(m) && m.Missed == 0 {
			n++
		}
	}
	return n
}

// waitPush waits for a push matching match and returns it.
func (c *rtClient) waitPush(what string, match func(protocol.ServerMessage) bool) protocol.ServerMessage {
	c.t.Helper()
	var found protocol.ServerMessage
	if !c.waitState(replyTimeout, func() bool {
		for _, m := range c.pushes {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	}) {
		c.t.Fatalf("%s: no push: %s (reader: %v)", c.name, what, c.readErr())
	}
	return found
}

// anonErrors returns the error replies that carried no id.
func (c *rtClient) anonErrors() []protocol.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.Error(nil), c.anonErrs...)
}

func (c *rtClient) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// waitClose waits for the server to close the connection and returns the
// close code (-1 when it ended without a close frame).
func (c *rtClient) waitClose(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.readDone:
	case <-time.After(timeout):
		c.t.Fatalf("%s: connection still open after %v", c.name, timeout)
	}
	var ce *websocket.CloseError
	if errors.As(c.readErr(), &ce) {
		return ce.Code
	}
	return -1
}

// closeNow sends a normal close frame and drops the socket.
func (c *rtClient) closeNow() {
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.conn.Close()
	<-c.readDone
}

// isPresenceEvent tells join, leave and presence_count pushes from
// publications.
func isPresenceEvent(m protocol.ServerMessage) bool {
	return m.Join != nil || m.Leave != nil || m.PresenceCount != 0
}

// pubN is the "n" field of test publications ({"n":N,...}).
func pubN(t *testing.T, m protocol.ServerMessage) int {
	t.Helper()
	var v struct {
		N *int `json:"n"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil || v.N == nil {
		t.Fatalf("publication data %s has no n", m.Data)
	}
	return *v.N
}

// publishUntilStopped publishes {"n":…} to channel through the HTTP API
// from workers goroutines, as fast as the server answers, until stop is
// called (stop waits for them). A worker that fails sends its error on
// errs and ends.
func publishUntilStopped(s *testServer, channel string, workers int) (errs <-chan error, stop func()) {
	failed := make(chan error, workers)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: replyTimeout}
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequest("POST", s.url("/api/publish"), strings.NewReader(fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, channel, n)))
				req.Header.Set("Authorization", "Bearer "+testAPIKey)
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("publish: HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed <- err
					return
				}
			}
		})
	}
	return failed, func() { close(done); wg.Wait() }
}
