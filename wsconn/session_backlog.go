package wsconn

// Backlogged reports whether the session still has data to write: queued
// messages or control frames, the rest of a partly written frame, or a
// writer at work. A sender that would rather skip a message than queue it
// behind others (a periodic snapshot, a flow-controlled tick) asks first.
// It takes no lock and may be called from any goroutine; the answer may
// be stale by the time it is used, in either direction.
func (s *Session) Backlogged() bool { return !s.queue.idle() }
