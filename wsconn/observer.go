package wsconn

// Observer is told what the sessions do, for metrics. Its methods are
// called from many goroutines at once and must be safe for that; they are
// on the hot path, so they must not block.
type Observer interface {
	// ConnOpened and ConnClosed bracket each registered session.
	ConnOpened()
	ConnClosed()
	// MessageIn and MessageOut count one data message and its payload size.
	MessageIn(bytes int)
	MessageOut(bytes int)
	// CloseSent counts a close frame sent to a client, by code.
	CloseSent(code CloseCode)
}

// NopObserver ignores everything. It is safe for concurrent use.
type NopObserver struct{}

var _ Observer = NopObserver{}

func (NopObserver) ConnOpened()         {}
func (NopObserver) ConnClosed()         {}
func (NopObserver) MessageIn(int)       {}
func (NopObserver) MessageOut(int)      {}
func (NopObserver) CloseSent(CloseCode) {}
