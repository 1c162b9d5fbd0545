package wsconn

import "fmt"

// PollerMode picks how a Registry reads idle sessions.
type PollerMode int

const (
	// PollerAuto reads idle sessions with the system's poller where there
	// is one (epoll on Linux): an idle connection then has no goroutine,
	// and frames go straight to the socket's descriptor. Elsewhere it is
	// PollerOff.
	PollerAuto PollerMode = iota
	// PollerOff reads every session on a goroutine of its own and writes
	// through net.Conn: what every system other than Linux runs, and on
	// Linux the way to test that path (WS_POLLER=off).
	PollerOff
)

// ParsePollerMode reads "auto" or "off".
func ParsePollerMode(s string) (PollerMode, error) {
	switch s {
	case "auto":
		return PollerAuto, nil
	case "off":
		return PollerOff, nil
	}
	return 0, fmt.Errorf("must be auto or off, not %q", s)
}

// String is the mode as ParsePollerMode reads it.
func (m PollerMode) String() string {
	if m == PollerOff {
		return "off"
	}
	return "auto"
}
