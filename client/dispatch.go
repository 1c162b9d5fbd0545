package client

import "sync"

// dispatcher runs the application's handlers one at a time, in the order
// the events happened, on a goroutine of its own: the reader never waits
// for a handler, and a handler may call the Client (publish an answer,
// subscribe) without deadlocking on the reply it waits for.
type dispatcher struct {
	mu      sync.Mutex
	queue   []func()
	wake    chan struct{} // one token: the queue is not empty
	closed  bool
	started bool
	done    chan struct{}
}

func newDispatcher() *dispatcher {
	return &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// start launches the goroutine (once).
func (d *dispatcher) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started && !d.closed {
		d.started = true
		go d.run()
	}
}

// post queues fn; after stop it is dropped.
func (d *dispatcher) post(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.queue = append(d.queue, fn)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for range d.wake {
		for {
			d.mu.Lock()
			if len(d.queue) == 0 {
				closed := d.closed
				d.mu.Unlock()
				if closed {
					return
				}
				break
			}
			fn := d.queue[0]
			d.queue[0] = nil
			d.queue = d.queue[1:]
			d.mu.Unlock()
			fn()
		}
	}
}

// stop lets the queued handlers run, then ends the goroutine and waits.
func (d *dispatcher) stop() {
	d.mu.Lock()
	if !d.started {
		d.closed = true
		d.mu.Unlock()
		return
	}
	if !d.closed {
		d.closed = true
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
	<-d.done
}
