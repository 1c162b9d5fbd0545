package rttest

import "sync"

// ReadGate holds a test client's reader while paused, to play a client
// that stops reading. The zero value is open.
//
// Concurrency: every method may be called from any goroutine; Wait is
// the reader's.
type ReadGate struct {
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

// Wait returns at once while open, and once resumed while paused.
func (g *ReadGate) Wait() {
	g.mu.Lock()
	for g.paused {
		ch := g.resume
		g.mu.Unlock()
		<-ch
		g.mu.Lock()
	}
	g.mu.Unlock()
}

// Pause makes the next Wait block until Resume.
func (g *ReadGate) Pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		g.paused = true
		g.resume = make(chan struct{})
	}
}

// Resume lets a paused reader go on.
func (g *ReadGate) Resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		close(g.resume)
	}
}
