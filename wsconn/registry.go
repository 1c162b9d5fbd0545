// Package wsconn is the connection core of duplex: one Session per
// WebSocket, with its own RFC 6455 framing, one writer at a time, a
// byte-capped send queue, heartbeats and deadlines, and a Registry that
// caps, counts and shuts down every open session and whose poller reads
// idle connections without a goroutine each. It does not import Fiber: it
// works on the upgraded connection that any HTTP server hands it.
package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
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
	max     int
	maxPeer int  // sessions one peer may hold; 0: no cap
	direct  bool // sessions given their socket use direct I/O and the poller
	obs     Observer
	log     *slog.Logger

	nextID atomic.Uint64

	mu       sync.Mutex
	sessions map[uint64]*Session
	streams  map[uint64]*Stream // registry_stream.go
	perPeer  map[string]int     // open sessions by peer, with maxPeer set
	shutdown bool
	emptied  chan struct{} // closed when shutdown has begun and no session is left
	emptyOne sync.Once

	pollMu      sync.Mutex
	poll        *poller // started on first use
	pollStopped bool

	beats heartbeats // every session's heartbeat, on one timer

	// turnsStarted counts the read turns started on goroutines of their
	// own (not the first, on Serve's): what input on idle sessions costs.
	turnsStarted atomic.Uint64

	burst *burstRelease // returns a connection burst's garbage (burst_release.go)
}

// RegistryConfig is what NewRegistry needs.
type RegistryConfig struct {
	// MaxSessions is how many sessions may be open at once.
	MaxSessions int
	// MaxPerPeer is how many of them one peer (a client address, as the
	// caller of Serve names it) may hold; 0 means no cap.
	MaxPerPeer int
	// Poller picks how idle sessions are read (PollerAuto by default).
	Poller PollerMode
	// Observer is told what the sessions do; nil ignores it.
	Observer Observer
	// Log is where sessions log; nil discards.
	Log *slog.Logger
}

// NewRegistry makes a registry as cfg says.
func NewRegistry(cfg RegistryConfig) *Registry {
	obs, log := cfg.Observer, cfg.Log
	if obs == nil {
		obs = NopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		max: cfg.MaxSessions, maxPeer: cfg.MaxPerPeer, direct: cfg.Poller == PollerAuto && pollerSupported,
		obs: obs, log: log, sessions: make(map[uint64]*Session), streams: make(map[uint64]*Stream),
		perPeer: make(map[string]int),
		emptied: make(chan struct{}),
		burst:   newBurstRelease(),
	}
}

// Polling reports whether idle sessions that Serve is given the socket of
// are read by the poller, with no goroutine each (PollerAuto on Linux),
// rather than on a goroutine of their own.
func (r *Registry) Polling() bool { return r.direct }

// Len is the number of open sessions and streams.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open()
}

// open is Len with r.mu held.
func (r *Registry) open() int { return len(r.sessions) + len(r.streams) }

// Admission is whether a new connection would be accepted, or why not.
type Admission int

// The answers of Admitting.
const (
	// Admitted: a new connection would be accepted.
	Admitted Admission = iota
	// RefusedShuttingDown: the registry is shutting down.
	RefusedShuttingDown
	// RefusedCapacity: MaxSessions sessions are open.
	RefusedCapacity
	// RefusedPeerCapacity: the peer holds MaxPerPeer sessions.
	RefusedPeerCapacity
)

// String is the reason as metrics label it: "shutting_down", "capacity".
func (a Admission) String() string {
	switch a {
	case Admitted:
		return "admitted"
	case RefusedShuttingDown:
		return "shutting_down"
	case RefusedCapacity:
		return "capacity"
	case RefusedPeerCapacity:
		return "ip_capacity"
	}
	return "unknown"
}

// Admitting reports whether a new connection from peer would be accepted
// now. It is the check made before an upgrade, so refused clients get a
// proper HTTP status; Serve checks again, since two upgrades may race past
// it.
func (r *Registry) Admitting(peer string) Admission {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.admission(peer)
}

// admission is Admitting with r.mu held.
func (r *Registry) admission(peer string) Admission {
	switch {
	case r.shutdown:
		return RefusedShuttingDown
	case r.open() >= r.max:
		return RefusedCapacity
	case r.maxPeer > 0 && peer != "" && r.perPeer[peer] >= r.maxPeer:
		return RefusedPeerCapacity
	}
	return Admitted
}

// Serve runs one upgraded connection from peer (the client's address,
// counted against MaxPerPeer; "" counts against nothing), under lim
// (shared, not copied: it must not change afterwards), with the Handler
// that open makes for it once it is registered. It must be called on the
// goroutine the HTTP server hands the upgraded connection to.
//
// sock is the TCP socket under hijacked, when the caller hands the
// connection over for good: the session then closes it itself, and with
// fasthttp the server must not (Server.KeepHijackedConns). Where the
// registry polls (Polling), Serve then returns once it has handled the
// client's first input, or waited firstInputWait for it, and the poller
// reads the connection from then on, so an idle connection needs no
// goroutine; frames are written to sock directly, without
// waiting, when the client is idle. Otherwise, or with sock nil, Serve
// reads on the calling goroutine and returns when the session has ended
// and its writer has stopped (with sock nil the caller may then let the
// connection be reused).
func (r *Registry) Serve(hijacked, sock net.Conn, peer string, lim *Limits, open OpenFunc) {
	s := newSession(r, r.nextID.Add(1), hijacked, sock, r.direct, lim)
	if r.maxPeer > 0 {
		s.peer = peer // only the per-peer count needs it
	}
	if sock != nil && s.sock.raw != nil {
		s.poll = r.poller() // before add: the poller finds the session through it
	}
	if code, reason, ok := r.add(s); !ok {
		// Lost the race for the last slot, or shutdown began meanwhile.
		if s.sock.writeAll(CloseFrame(code, reason), lim.WriteTimeout) == nil {
			r.obs.CloseSent(code)
		}
		_ = hijacked.Close()
		return
	}
	r.burst.opened()
	var early []byte
	if s.poll != nil {
		reserveFirstTurnStack(0)
		early = s.takeBuffered()
		// Nothing reads hijacked any more, and closing it closes sock
		// (KeepHijackedConns): hold sock alone, so that the HTTP server's
		// wrapper around it is not kept alive by every idle connection.
		s.hijacked = sock
	}
	s.startHeartbeat()
	if !s.open(open) {
		s.Close(CloseInternalError, "internal error")
		s.end(false)
		return
	}
	if s.poll == nil {
		s.readBlocking()
		return
	}
	// This goroutine is the session's first read turn; once it has read
	// what there is, the poller starts the next ones.
	s.rstate.Store(turnRunning)
	if len(early) > 0 {
		s.consume(early)
	}
	s.firstTurn(len(early) == 0)
}

// poller returns the registry's poller, starting it on first use; nil if
// the system has none (the sessions are then read on goroutines) or the
// registry has shut down.
func (r *Registry) poller() *poller {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if r.poll == nil && !r.pollStopped {
		p, err := newPoller(r.lookup)
		if err != nil {
			r.log.Warn("no poller: every connection is read on a goroutine of its own", "err", err)
			r.pollStopped = true
			return nil
		}
		r.poll = p
	}
	return r.poll
}

// stopPoller ends the poller for good, once no session needs it.
func (r *Registry) stopPoller() {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if r.poll != nil {
		r.poll.close()
		r.poll = nil
	}
	r.pollStopped = true
}

// lookup finds an open session by id, for the poller.
func (r *Registry) lookup(id uint64) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id]
}

func (r *Registry) add(s *Session) (code CloseCode, reason string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.admission(s.peer) {
	case RefusedShuttingDown:
		return CloseGoingAway, "server shutting down", false
	case RefusedCapacity:
		return CloseTryAgainLater, "server at connection limit", false
	case RefusedPeerCapacity:
		return CloseTryAgainLater, "too many connections from your address", false
	}
	r.sessions[s.id] = s
	r.addPeer(s.peer)
	r.obs.ConnOpened()
	return 0, "", true
}

func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s.id)
	r.obs.ConnClosed()
	r.dropPeer(s.peer)
	r.emptiedIfDone()
}

// emptiedIfDone tells Shutdown when the last member is gone; r.mu is held.
func (r *Registry) emptiedIfDone() {
	if r.shutdown && r.open() == 0 {
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
	r.emptiedIfDone()
	open, openStreams := r.snapshot(), r.streamSnapshot()
	r.mu.Unlock()

	for _, s := range open {
		s.Close(CloseGoingAway, "server shutting down")
	}
	for _, s := range openStreams {
		s.Close(CloseGoingAway, "server shutting down")
	}

	defer r.stopPoller()
	r.burst.stop()
	select {
	case <-r.emptied:
		return nil
	case <-ctx.Done():
	}

	r.mu.Lock()
	left, leftStreams := r.snapshot(), r.streamSnapshot()
	r.mu.Unlock()
	r.log.Warn("force-closing sessions at shutdown deadline", "count", len(left)+len(leftStreams))
	for _, s := range left {
		s.forceClose()
	}
	for _, s := range leftStreams {
		s.kill()
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
