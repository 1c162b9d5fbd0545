// Package wsconn is the connection core of duplex: one Session per
// WebSocket, with a single writer goroutine, a byte-capped send queue,
// heartbeats and deadlines, and a Registry that caps, counts and shuts
// down every open session. It does not import Fiber: it works on the
// fasthttp/websocket connection that any handler hands it.
package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// ErrShutdownTimeout is returned by Shutdown when some sessions outlived
// the deadline and were dropped without a close handshake.
var ErrShutdownTimeout = errors.New("wsconn: sessions still open at shutdown deadline, force-closed")

// Registry knows every open session. The connection cap and the graceful
// shutdown rely on it, since the HTTP server does not track hijacked
// connections.
//
// Concurrency: every method may be called from any goroutine.
type Registry struct {
	max int
	obs Observer
	log *slog.Logger

	nextID atomic.Uint64

	mu       sync.Mutex
	sessions map[uint64]*Session
	shutdown bool
	emptied  chan struct{} // closed when shutdown has begun and no session is left
	emptyOne sync.Once
}

// NewRegistry makes a registry that admits at most max sessions at once.
// obs and log may be nil.
func NewRegistry(max int, obs Observer, log *slog.Logger) *Registry {
	if obs == nil {
		obs = NopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{max: max, obs: obs, log: log, sessions: make(map[uint64]*Session), emptied: make(chan struct{})}
}

// Len is the number of open sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Admitting reports whether a new connection would be accepted now. It is
// the check made before an upgrade, so refused clients get a proper HTTP
// status; Serve checks again, since two upgrades may race past it.
func (r *Registry) Admitting() (ok bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.shutdown:
		return false, "shutting_down"
	case len(r.sessions) >= r.max:
		return false, "capacity"
	}
	return true, ""
}

// Serve runs one upgraded connection to its end, with the Handler that
// open makes for it once it is registered. It must be called on the
// WebSocket handler's goroutine and returns only when the session's writer
// has stopped, so the caller may return and let the connection be reused.
//
// sock is the accepted connection under conn, the one the HTTP server
// hijacked (fasthttp.RequestCtx.Conn). The session writes frames to it
// directly, without waiting, when it is a *net.TCPConn; nil, or any other
// net.Conn, makes every write go through the writer goroutine.
func (r *Registry) Serve(conn *websocket.Conn, sock net.Conn, lim Limits, open OpenFunc) {
	s := newSession(r.nextID.Add(1), conn, sock, lim, r.obs, r.log)
	if code, reason, ok := r.add(s); !ok {
		// Lost the race for the last slot, or shutdown began meanwhile.
		msg := websocket.FormatCloseMessage(code, reason)
		if conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(lim.WriteTimeout)) == nil {
			r.obs.CloseSent(code)
		}
		return
	}
	defer r.remove(s)
	s.run(open(s))
}

func (r *Registry) add(s *Session) (code int, reason string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.shutdown:
		return CloseGoingAway, "server shutting down", false
	case len(r.sessions) >= r.max:
		return CloseTryAgainLater, "server at connection limit", false
	}
	r.sessions[s.id] = s
	r.obs.ConnOpened()
	return 0, "", true
}

func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s.id)
	r.obs.ConnClosed()
	if r.shutdown && len(r.sessions) == 0 {
		r.emptyOne.Do(func() { close(r.emptied) })
	}
}

// Shutdown refuses new sessions, asks every open one to close with
// code 1001 (each flushes its queue first), and waits until all are gone
// or ctx ends. Sessions still open then are force-closed, and
// ErrShutdownTimeout is returned once they are gone. Calling it again
// waits again.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.shutdown = true
	if len(r.sessions) == 0 {
		r.emptyOne.Do(func() { close(r.emptied) })
	}
	open := r.snapshot()
	r.mu.Unlock()

	for _, s := range open {
		s.Close(CloseGoingAway, "server shutting down")
	}

	select {
	case <-r.emptied:
		return nil
	case <-ctx.Done():
	}

	r.mu.Lock()
	left := r.snapshot()
	r.mu.Unlock()
	r.log.Warn("force-closing sessions at shutdown deadline", "count", len(left))
	for _, s := range left {
		s.forceClose()
	}
	// A dropped socket fails its reader at once; this wait is short and
	// bounded so a stuck handler cannot hang the process.
	select {
	case <-r.emptied:
	case <-time.After(time.Second):
	}
	return ErrShutdownTimeout
}

func (r *Registry) snapshot() []*Session {
	out := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	return out
}
