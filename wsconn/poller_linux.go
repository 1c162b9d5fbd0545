//go:build linux

package wsconn

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller waits for input on every idle session at once, on one goroutine
// and one epoll instance, so that an idle connection has no goroutine of
// its own (a goroutine blocked in a read costs a stack of several KB).
// When a session's socket becomes readable the poller reads what is there
// (Session.pollInput): pings and pongs it handles itself; for anything
// else it starts a read turn, which handles that input and what follows,
// and ends.
//
// Sockets are registered one-shot: after an event the poller ignores the
// socket while its read turn runs (the turn waits for more input in the
// runtime's own poller), and the turn rearms it before it exits.
//
// Concurrency: add, del and close may be called from any goroutine; run
// is the poller's own goroutine, started by newPoller and ended by close.
type poller struct {
	epfd   int
	wakeFD int // an eventfd: writing to it ends run
	lookup func(id uint64) *Session

	mu     sync.RWMutex // held to use epfd; close takes it exclusively
	closed bool
	done   chan struct{}
}

// pollerSupported: Linux has epoll, so PollerAuto polls.
const pollerSupported = true

// pollerWakeID is the event data of the wake-up eventfd; session ids start
// at 1.
const pollerWakeID = 0

func newPoller(lookup func(id uint64) *Session) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("wsconn: epoll_create1: %w", err)
	}
	wakeFD, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("wsconn: eventfd: %w", err)
	}
	p := &poller{epfd: epfd, wakeFD: wakeFD, lookup: lookup, done: make(chan struct{})}
	if err := p.ctl(unix.EPOLL_CTL_ADD, wakeFD, pollerWakeID, unix.EPOLLIN); err != nil {
		_ = unix.Close(wakeFD)
		_ = unix.Close(epfd)
		return nil, err
	}
	go p.run()
	return p, nil
}

func (p *poller) ctl(op, fd int, id uint64, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	if err := unix.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("wsconn: epoll_ctl: %w", err)
	}
	return nil
}

// watchEvents: one event when input is waiting (or the peer has closed),
// then nothing until rearm.
const watchEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// add watches fd for input for the session with id.
func (p *poller) add(fd int, id uint64) error {
	return p.ctlOpen(unix.EPOLL_CTL_ADD, fd, id)
}

// rearm watches fd again after its event fired. Input already waiting
// fires at once.
func (p *poller) rearm(fd int, id uint64) error {
	return p.ctlOpen(unix.EPOLL_CTL_MOD, fd, id)
}

func (p *poller) ctlOpen(op, fd int, id uint64) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("wsconn: poller closed")
	}
	return p.ctl(op, fd, id, watchEvents)
}

// del stops watching fd. It must be called before fd is closed, since the
// number may be reused at once; an event already taken for it finds the
// session gone or ended and is ignored.
func (p *poller) del(fd int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.closed {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	input := make([]byte, readBufSize) // pollInput's, one event at a time
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return // only a closed or broken epoll instance gets here
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == pollerWakeID {
				return
			}
			if s := p.lookup(id); s != nil {
				s.pollInput(input)
			}
		}
	}
}

// close ends run, waits for it, and releases the epoll instance. Sessions
// still registered are not touched.
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	_, _ = unix.Write(p.wakeFD, one)
	<-p.done
	_ = unix.Close(p.wakeFD)
	_ = unix.Close(p.epfd)
}
