package features

import (
	"context"
	"time"
)

// serviceLoop is the life of a Service whose work is one goroutine: start
// runs it, stop cancels it and waits for it to return, as Service asks.
// A service embeds it and calls start from its Start.
type serviceLoop struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine returns
}

// start runs work on a new goroutine, with a context that stop cancels
// (not Start's, which bounds the start only).
func (l *serviceLoop) start(work func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		work(ctx)
	}()
}

// stop cancels the goroutine and waits for it, or for ctx. A loop that
// was never started (its service was off) stops at once.
func (l *serviceLoop) stop(ctx context.Context) error {
	if l.cancel == nil {
		return nil
	}
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// every calls tick every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, tick func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tick(now)
		}
	}
}
