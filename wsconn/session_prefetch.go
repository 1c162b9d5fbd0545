package wsconn

// Prefetch reads the state a Send reads first (the session's lock and
// flags, its socket and queue, its limits), so that a caller about to
// send to many sessions in turn, a fan-out, can bring them into the CPU
// cache for several sessions at once: the loads of different sessions
// overlap, where each send alone would wait for its own. What it reports
// (the session is closing, something is queued, it sends compressed) is
// a hint only, stale at once. Safe from any goroutine; it takes no lock.
//
// It is not inlined, so that its loads are made, unconditionally, even
// where the caller ignores the answers.
//
//go:noinline
func (s *Session) Prefetch() (closing, busy, deflate bool) {
	return s.closingNow.Load(), s.queue.busy.Load(), s.lim.Deflate
}
