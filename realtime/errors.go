package realtime

import (
	"errors"

	"github.com/duplex/duplex/realtime/protocol"
)

// backendError is a broker or presence-store failure as the hub returns
// it. Clients and API callers must not see the backend's text (server
// addresses, subjects, library messages), so errors.As(err, &*Error)
// finds only public, a fixed unavailable message; the cause stays in the
// chain for errors.Is (ErrBrokerUnavailable, context errors) and in
// Error() for logs. It is an immutable value once made.
type backendError struct {
	public *Error
	cause  error
}

func (e *backendError) Error() string { return e.public.Message + ": " + e.cause.Error() }

// Unwrap lists public first, so errors.As for *Error stops there and
// never reaches a coded error the cause might wrap deeper down.
func (e *backendError) Unwrap() []error { return []error{e.public, e.cause} }

// unavailable wraps a backend failure of what ("publish", "history", …)
// on channel for the caller and logs the cause, which is the only place
// the server keeps it. A coded error from the backend (for example a bad
// channel name the broker refused) is already meant for clients and is
// returned as it is.
func (h *Hub) unavailable(what, channel string, err error) error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	h.log.Warn("backend failed", "op", what, "channel", channel, "err", err)
	return &backendError{
		public: &Error{Code: protocol.CodeUnavailable, Message: what + " failed: service unavailable, retry later"},
		cause:  err,
	}
}
