//go:build !linux

package wsconn

import "errors"

// pollerSupported: this system has no poller here, so PollerAuto reads
// every session on a goroutine of its own, as PollerOff does.
const pollerSupported = false

var errNoPoller = errors.New("wsconn: no poller on this system")

// poller is absent on this system; a Registry never starts one, since no
// session has the descriptor it would watch (socket.initDirect).
type poller struct{}

func newPoller(func(id uint64) *Session) (*poller, error) { return nil, errNoPoller }

func (*poller) add(int, uint64) error   { return errNoPoller }
func (*poller) rearm(int, uint64) error { return errNoPoller }
func (*poller) del(int)                 {}
func (*poller) close()                  {}
