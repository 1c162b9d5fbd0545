package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime/protocol"
)

// sseClient is a recording SSE client of /realtime/sse and
// /realtime/emit, as a browser's EventSource and fetch would use them: it
// parses the event stream on its own goroutine, records every message,
// heartbeat and the close event, and can stop reading to play a stalled
// client.
//
// Concurrency: every method may be called from any goroutine; the ones
// that fail the test only from the test's.
type sseClient struct {
	t     *testing.T
	base  string // http://host:port
	name  string
	token string // sent with every emit as Authorization: Bearer
	resp  *http.Response
	hc    *http.Client

	session string  // from the session event
	ping    float64 // seconds, from the session event
	maxEmit int     // bytes, from the session event

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced whenever something arrives
	msgs       []protocol.ServerMessage
	heartbeats int
	closeEv    *sseCloseEvent
	ended      bool  // the stream ended
	readErr    error // why, if not after the close event
	nextID     uint64

	gate rttest.ReadGate
}

// sseCloseEvent is the data of the close event.
type sseCloseEvent struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// sseOptions are what openSSE passes on.
type sseOptions struct {
	// Token is put in the stream's query (?token=) and sent with emits.
	Token string
	// Header is sent with the stream request (Origin, say).
	Header http.Header
	// RcvBuf, when set, is the socket's receive buffer (a stalled client
	// backs up sooner).
	RcvBuf int
}

// tryOpenSSE opens the stream; when the server refuses it, c is nil and
// status and body are the refusal's.
func tryOpenSSE(t *testing.T, s *testServer, query string, o sseOptions) (c *sseClient, status int, body string) {
	t.Helper()
	return tryOpenSSEAt(t, "http://"+s.addr, query, o)
}

func tryOpenSSEAt(t *testing.T, base, query string, o sseOptions) (c *sseClient, status int, body string) {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	if o.RcvBuf > 0 {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := conn.(*net.TCPConn).SetReadBuffer(o.RcvBuf); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		}
	}
	if o.Token != "" {
		query = strings.TrimPrefix(query+"&token="+o.Token, "&")
	}
	req, err := http.NewRequest("GET", base+"/realtime/sse?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET /realtime/sse?%s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, resp.StatusCode, string(b)
	}
	c = &sseClient{
		t: t, base: base, name: query, token: o.Token, resp: resp,
		hc:      &http.Client{Timeout: 10 * time.Second},
		changed: make(chan struct{}),
	}
	t.Cleanup(func() { resp.Body.Close(); tr.CloseIdleConnections() })
	br := bufio.NewReader(resp.Body)
	name, data, err := readEvent(br)
	if err != nil || name != "session" {
		t.Fatalf("%s: first event %q %q (%v), want the session event", c.name, name, data, err)
	}
	var sess struct {
		Session string  `json:"session"`
		Ping    float64 `json:"ping"`
		MaxEmit int     `json:"max_emit"`
	}
	if err := json.Unmarshal([]byte(data), &sess); err != nil || sess.Session == "" || sess.Ping <= 0 {
		t.Fatalf("%s: session event %q: %v", c.name, data, err)
	}
	c.session, c.ping, c.maxEmit = sess.Session, sess.Ping, sess.MaxEmit
	go c.read(br)
	return c, resp.StatusCode, ""
}

// openSSE opens the stream or fails the test.
func openSSE(t *testing.T, s *testServer, query string, o sseOptions) *sseClient {
	t.Helper()
	c, status, body := tryOpenSSE(t, s, query, o)
	if c == nil {
		t.Fatalf("GET /realtime/sse?%s: %d %s", query, status, body)
	}
	return c
}

// readEvent reads one event: its name ("" for a default event) and data.
// A comment-only block (": ping") comes back as name ":".
func readEvent(br *bufio.Reader) (name, data string, err error) {
	var lines []string
	comment := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(lines) == 0 && !comment {
				continue
			}
			if len(lines) == 0 {
				return ":", "", nil
			}
			return name, strings.Join(lines, "\n"), nil
		case strings.HasPrefix(line, ":"):
			comment = true
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			lines = append(lines, strings.TrimPrefix(line, "data: "))
		default:
			return "", "", &sseFormatError{line}
		}
	}
}

type sseFormatError struct{ line string }

func (e *sseFormatError) Error() string { return "not an event-stream line: " + e.line }

// read is the client's reader goroutine; it ends with the stream.
func (c *sseClient) read(br *bufio.Reader) {
	for {
		c.gate.Wait()
		name, data, err := readEvent(br)
		c.mu.Lock()
		switch {
		case err != nil:
			c.ended, c.readErr = true, err
		case name == ":":
			c.heartbeats++
		case name == "close":
			var ev sseCloseEvent
			if jerr := json.Unmarshal([]byte(data), &ev); jerr != nil {
				c.readErr = jerr
			}
			c.closeEv = &ev
		case name == "":
			m, jerr := protocol.DecodeServerMessage([]byte(data))
			if jerr != nil {
				c.readErr = jerr
			}
			c.msgs = append(c.msgs, m)
		default:
			c.readErr = &sseFormatError{"event: " + name}
		}
		close(c.changed)
		c.changed = make(chan struct{})
		done := c.ended
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// pauseReading stops the reader before its next event; resumeReading
// lets it go on.
func (c *sseClient) pauseReading()  { c.gate.Pause() }
func (c *sseClient) resumeReading() { c.gate.Resume() }

// waitState waits until cond (called with c.mu held) holds, or timeout.
func (c *sseClient) waitState(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// waitMsg waits for a message that match accepts and returns it.
func (c *sseClient) waitMsg(what string, match func(protocol.ServerMessage) bool) protocol.ServerMessage {
	c.t.Helper()
	var got protocol.ServerMessage
	if !c.waitState(replyTimeout, func() bool {
		for _, m := range c.msgs {
			if match(m) {
				got = m
				return true
			}
		}
		return false
	}) {
		c.t.Fatalf("%s: no %s (ended %v, %v; got %d messages)", c.name, what, c.ended, c.readErr, len(c.messages()))
	}
	return got
}

// messages is a copy of every message so far.
func (c *sseClient) messages() []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.ServerMessage(nil), c.msgs...)
}

// pubs are the publications of channel so far.
func (c *sseClient) pubs(channel string) []protocol.ServerMessage {
	var out []protocol.ServerMessage
	for _, m := range c.messages() {
		if m.ID == 0 && m.Channel == channel && m.Data != nil {
			out = append(out, m)
		}
	}
	return out
}

// waitClose waits for the close event and the end of the stream and
// returns the close event.
func (c *sseClient) waitClose(timeout time.Duration) sseCloseEvent {
	c.t.Helper()
	if !c.waitState(timeout, func() bool { return c.ended }) {
		c.t.Fatalf("%s: the stream did not end", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeEv == nil {
		c.t.Fatalf("%s: the stream ended without a close event (%v)", c.name, c.readErr)
	}
	return *c.closeEv
}

// emitAs posts body to the client's session with token ("" for none) and
// extra headers, and returns the status and body of the answer.
func (c *sseClient) emitAs(body, token string, header http.Header) (int, string) {
	c.t.Helper()
	return postEmit(c.t, c.base, c.session, body, token, header)
}

// postEmit posts body to /realtime/emit?session=sid on the server at base.
func postEmit(t *testing.T, base, sid, body, token string, header http.Header) (int, string) {
	t.Helper()
	status, resp, err := tryPostEmitAs(base, sid, body, token, header)
	if err != nil {
		t.Fatalf("emit: %v", err)
	}
	return status, resp
}

// tryPostEmit is postEmit without a token, returning the request's error.
func tryPostEmit(base, sid, body string) (int, string, error) {
	return tryPostEmitAs(base, sid, body, "", nil)
}

func tryPostEmitAs(base, sid, body, token string, header http.Header) (int, string, error) {
	return tryPostEmitTo(base, "/realtime/emit", sid, body, token, header)
}

// tryPostEmitTo is tryPostEmitAs to the path given (a spelling of the
// emit's route).
func tryPostEmitTo(base, path, sid, body, token string, header http.Header) (int, string, error) {
	req, err := http.NewRequest("POST", base+path+"?session="+sid, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// send emits cmds (ids assigned) in one body with the client's token,
// requires 204, and returns the ids.
func (c *sseClient) send(cmds ...protocol.Command) []uint64 {
	c.t.Helper()
	lines := make([]string, len(cmds))
	ids := make([]uint64, len(cmds))
	c.mu.Lock()
	for i := range cmds {
		c.nextID++
		cmds[i].ID, ids[i] = c.nextID, c.nextID
		lines[i] = string(protocol.EncodeCommand(cmds[i]))
	}
	c.mu.Unlock()
	if status, body := c.emitAs(strings.Join(lines, "\n"), c.token, nil); status != http.StatusNoContent {
		c.t.Fatalf("%s: emit: %d %s", c.name, status, body)
	}
	return ids
}

// reply waits for the reply to id.
func (c *sseClient) reply(id uint64) protocol.ServerMessage {
	c.t.Helper()
	return c.waitMsg("reply "+itoa(id), func(m protocol.ServerMessage) bool { return m.ID == id })
}

// call sends cmd and waits for its reply, which must not be an error.
func (c *sseClient) call(cmd protocol.Command, out any) {
	c.t.Helper()
	m := c.reply(c.send(cmd)[0])
	if m.Error != nil {
		c.t.Fatalf("%s: %s: error %s %s", c.name, cmd.Op, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			c.t.Fatalf("%s: %s result %s: %v", c.name, cmd.Op, m.Result, err)
		}
	}
}

func (c *sseClient) subscribe(channel string) protocol.SubscribeResult {
	c.t.Helper()
	var r protocol.SubscribeResult
	c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: channel}, &r)
	return r
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
