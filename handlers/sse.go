package handlers

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
	"github.com/duplex/duplex/wsconn"
)

// sseKey is the Locals key SSEGuard sets on a stream request it admitted,
// so the identity middlewares treat it like an upgrade.
const sseKey = "duplex.sse"

// opensConnection reports whether c opens a /realtime connection: a
// WebSocket upgrade or an SSE stream that SSEGuard admitted.
func opensConnection(c *fiber.Ctx) bool {
	if IsUpgrade(c) {
		return true
	}
	sse, _ := c.Locals(sseKey).(bool)
	return sse
}

// SSEObserver counts what the SSE transport does, for metrics.
// Implementations must be safe for concurrent use and must not block.
type SSEObserver interface {
	StreamOpened()
	StreamClosed()
	// StreamCloseSent counts a close event, by code.
	StreamCloseSent(code int)
	// EmitAnswered counts an emit by the HTTP status it got.
	EmitAnswered(status int)
}

// SSE is the server-sent-events transport of /realtime: GET
// /realtime/sse streams what the server sends, POST /realtime/emit
// carries the client's commands to the stream's realtime.Client, on this
// node or routed through the broker to the node that owns the stream.
//
// Concurrency: its handlers run on any number of request goroutines.
type SSE struct {
	hub      *realtime.Hub
	reg      *wsconn.Registry
	lim      wsconn.Limits
	clim     realtime.ClientLimits
	origins  OriginPolicy
	obs      SSEObserver
	sessions *sseSessions
	log      *slog.Logger
	// routeTimeout bounds an emit's trip to another node.
	routeTimeout time.Duration
}

// SSEConfig is what NewSSE needs.
type SSEConfig struct {
	Hub      *realtime.Hub
	Registry *wsconn.Registry
	// Limits are the sockets' (RealtimeLimits of them): the send queue,
	// the heartbeat interval, the write timeout, the largest emit.
	Limits       wsconn.Limits
	ClientLimits realtime.ClientLimits
	Origins      OriginPolicy
	// Verify checks an emit's token against the stream's user; nil when
	// TOKEN_SECRET is unset.
	Verify   realtime.TokenVerifier
	Observer SSEObserver
	// Log is where a stream's panic is logged; nil discards.
	Log *slog.Logger
}

// emitRouteTimeout is how long an emit waits for the owning node.
const emitRouteTimeout = 5 * time.Second

// NewSSE makes the transport and makes this node the destination of the
// emits other nodes route to its streams.
func NewSSE(cfg SSEConfig) (*SSE, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	t := &SSE{
		hub: cfg.Hub, reg: cfg.Registry, lim: cfg.Limits, clim: cfg.ClientLimits,
		origins: cfg.Origins, obs: cfg.Observer, log: cfg.Log, routeTimeout: emitRouteTimeout,
		sessions: newSSESessions(cfg.Hub.NodeID(), cfg.Verify),
	}
	if err := cfg.Hub.ServeEmits(func(e realtime.Emit) int {
		return t.sessions.Deliver(e, int(t.lim.MaxMessageBytes))
	}); err != nil {
		return nil, err
	}
	return t, nil
}

// SSEGuard makes the checks of a new connection (Origin, per-address
// rate, capacity: as UpgradeGuard) before a stream opens, and marks the
// request for the identity middleware.
func SSEGuard(reg *wsconn.Registry, origins OriginPolicy, rate *PeerRate, refused RefusalCounter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if ok, err := admitConnection(c, reg, origins, rate, refused); !ok {
			return err
		}
		c.Locals(sseKey, true)
		return c.Next()
	}
}

// Stream serves GET /realtime/sse, after SSEGuard and the identity
// middleware: the session event, then every message of the stream's
// client as one event each, a heartbeat comment every ping interval, and
// the close event when the stream ends.
func (t *SSE) Stream(c *fiber.Ctx) error {
	peer, _ := c.Locals(peerKey).(string)
	id, _ := c.Locals(identityKey).(realtime.Identity)
	handshake, forHook := c.Locals(handshakeKey).(realtime.Handshake)
	stream, why := t.reg.OpenStream(peer, t.lim)
	if why != wsconn.Admitted {
		return refuseAdmission(c, why) // lost the race for the last slot
	}
	sub := streamSubscriber{stream}
	client := realtime.NewClient(t.hub, sub, id, t.clim)
	openToken := strings.Clone(c.Query("token"))
	if forHook {
		client.SetHandshake(handshake)
		openToken = handshake.Token
	}
	s := &sseSession{id: t.sessions.newID(), stream: stream, client: client, openToken: openToken}
	t.sessions.add(s)
	t.obs.StreamOpened()

	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	// The stream is the connection's last response: when it ends, so
	// does the connection, and nothing waits on it at shutdown.
	c.Context().SetConnectionClose()
	conn := c.Context().Conn()
	ping := strconv.FormatFloat(t.lim.PingInterval.Seconds(), 'f', -1, 64)
	maxEmit := strconv.FormatInt(t.lim.MaxMessageBytes, 10)
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer t.obs.StreamClosed()
		// Withdrawn from every channel once the stream is gone ...
		defer client.Close()
		// ... and before that unknown to emits, which are 410 from now on
		// rather than accepted by a client that is closing.
		defer t.sessions.end(s)
		// This is fasthttp's goroutine of the body stream, which recovers
		// nothing: a panic must cost the stream, not the process.
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("sse stream panicked", "session", s.id, "panic", r)
			}
		}()
		if conn != nil {
			go watchHangup(conn, stream)
		}
		w := &sseWriter{w: bw, conn: conn, timeout: t.lim.WriteTimeout, obs: t.obs}
		// max_emit tells the client how many bytes of commands one emit
		// may carry, so that it batches under this node's limit.
		w.event("session", `{"session":"`+s.id+`","ping":`+ping+`,"max_emit":`+maxEmit+`}`)
		if w.Flush() != nil {
			stream.Close(wsconn.CloseGoingAway, "")
		}
		stream.Serve(w)
	})
	return nil
}

// hangupReadBytes is what watchHangup reads at a time of what a client
// sends after its stream request (nothing, from a well-behaved one).
const hangupReadBytes = 64

// watchHangup ends stream as soon as its client closes the connection,
// as a socket's session ends when its reader sees the close: without it
// a client that went stayed subscribed, a member for the others and a
// connection against the caps, until a heartbeat's write failed. Nothing
// else reads the connection once the request is in (the stream is its
// last response), so a read returns only when the client goes, or when
// the server closes the connection after the stream ended; this
// goroutine ends then too. Bytes a client sends meanwhile are dropped.
//
// It costs a goroutine per stream, and stays because nothing else can
// tell in time that the client went:
//   - the writer notices only when a write fails, and the first write
//     after the client closed succeeds (the client's side answers it with
//     a reset); on an idle stream the writes are the heartbeats, so a
//     departed client would stay up to two WS_PING_INTERVALs (50 s by
//     default) a member and a connection, where a socket's leave is at
//     once (TestSSEClientThatLeavesIsGoneAtOnce);
//   - fasthttp's goroutine of the connection is busy copying the body
//     stream to it and reads nothing until the response is over;
//   - the registry's epoll poller, which reads sockets without a goroutine
//     each, owns only hijacked connections and runs on Linux alone, while
//     this connection stays fasthttp's (it writes the chunked body).
func watchHangup(conn net.Conn, stream *wsconn.Stream) {
	var buf [hangupReadBytes]byte
	for {
		// The server's ReadTimeout bounds reading requests, not this.
		if conn.SetReadDeadline(time.Time{}) != nil {
			stream.Hangup()
			return
		}
		if _, err := conn.Read(buf[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // a deadline set before ours was cleared
			}
			stream.Hangup()
			return
		}
	}
}

// streamSubscriber is an SSE stream as the hub sees it, like subscriber
// for a socket: the slow-consumer policy picks how to queue. The two are
// apart, not one adapter over an interface of both, because Enqueue is
// the fan-out's hot path: each calls its queue directly.
type streamSubscriber struct{ s *wsconn.Stream }

var (
	_ realtime.Subscriber = streamSubscriber{}
	_ realtime.ConnCloser = streamSubscriber{}
	_ realtime.Backlogger = streamSubscriber{}
)

func (a streamSubscriber) ID() uint64       { return a.s.ID() }
func (a streamSubscriber) Backlogged() bool { return a.s.Backlogged() }

// CloseConn implements realtime.ConnCloser: the close event goes out
// after what is queued.
func (a streamSubscriber) CloseConn(code int, reason string) {
	a.s.Close(wsconn.CloseCode(code), reason)
}

// Enqueue queues the frame's plain bytes: an SSE stream has no
// compression of its own (a proxy's gzip would have to buffer).
func (a streamSubscriber) Enqueue(frame *realtime.SharedFrame, policy realtime.SlowPolicy) (dropped int, ok bool) {
	if policy == realtime.PolicyDropOldest {
		n, err := a.s.SendDropOldest(frame.Data)
		return n, err == nil
	}
	return 0, a.s.Send(frame.Data) == nil
}

// sseWriter is the text/event-stream encoding of a wsconn.Stream. Writes
// go to fasthttp's body stream, which the connection's goroutine copies
// to the socket; Flush bounds the client's time to take them.
type sseWriter struct {
	w       *bufio.Writer
	conn    net.Conn
	timeout time.Duration
	obs     SSEObserver
}

var _ wsconn.StreamWriter = (*sseWriter)(nil)

// event writes one event; data holds no newline.
func (w *sseWriter) event(name, data string) {
	if name != "" {
		_, _ = w.w.WriteString("event: " + name + "\n")
	}
	_, _ = w.w.WriteString("data: ")
	_, _ = w.w.WriteString(data)
	_, _ = w.w.WriteString("\n\n")
}

// Message writes each JSON line of data as one default event.
func (w *sseWriter) Message(data []byte) error {
	protocol.SplitLines(data, func(line []byte) bool {
		_, _ = w.w.WriteString("data: ")
		_, _ = w.w.Write(line)
		_, _ = w.w.WriteString("\n\n")
		return true
	})
	return nil
}

func (w *sseWriter) Heartbeat() error {
	_, err := w.w.WriteString(": ping\n\n")
	return err
}

// sseClose is the data of the close event.
type sseClose struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (w *sseWriter) Close(code wsconn.CloseCode, reason string) error {
	data, _ := json.Marshal(sseClose{Code: int(code), Reason: reason}) // an int and a string: cannot fail
	w.event("close", string(data))
	w.obs.StreamCloseSent(int(code))
	return nil
}

// Flush hands what is buffered to the connection. The server set one
// write deadline for the whole response; each flush moves it on, so a
// stream lives as long as its client keeps reading.
func (w *sseWriter) Flush() error {
	if w.conn != nil {
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.w.Flush()
}

// Abort fails the connection's pending and later writes at once.
func (w *sseWriter) Abort() {
	if w.conn != nil {
		_ = w.conn.SetWriteDeadline(time.Now())
	}
}
