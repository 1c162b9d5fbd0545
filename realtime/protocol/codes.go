package protocol

import "fmt"

// Code is a stable, documented error code sent in error replies. Clients
// switch on it, so existing values never change meaning.
type Code string

// The error codes. Every error reply carries exactly one of them.
const (
	// CodeBadRequest: malformed JSON, an unknown op, a missing or invalid field.
	CodeBadRequest Code = "bad_request"
	// CodeBadChannel: the channel name is too long, uses characters outside
	// the allowed set, or names an unknown namespace.
	CodeBadChannel Code = "bad_channel"
	// CodeForbidden: the identity may not do this on this channel (for
	// example publishing to a server-only namespace).
	CodeForbidden Code = "forbidden"
	// CodeLimitExceeded: a per-connection limit (subscriptions, data size).
	CodeLimitExceeded Code = "limit_exceeded"
	// CodeRateLimited: too many commands or publications; slow down.
	CodeRateLimited Code = "rate_limited"
	// CodeUnavailable: a backend (broker, presence store) failed; retry
	// later. A publish answered so was not stored.
	CodeUnavailable Code = "unavailable"
	// CodeOutcomeUnknown: a publish reached the broker but was not
	// confirmed in time; it may have been stored and delivered. Retry with
	// the same idempotency key to publish it at most once.
	CodeOutcomeUnknown Code = "outcome_unknown"
	// CodeNotFound: the thing asked for does not exist (no history in this
	// namespace, a stream position no longer kept, not subscribed).
	CodeNotFound Code = "not_found"
	// CodeUnauthorized: a token is missing, invalid or expired.
	CodeUnauthorized Code = "unauthorized"
	// CodeInternal: a server bug; the connection survives.
	CodeInternal Code = "internal"
)

// Codes lists every error code, in documentation order.
var Codes = []Code{
	CodeBadRequest, CodeBadChannel, CodeForbidden, CodeLimitExceeded,
	CodeRateLimited, CodeUnavailable, CodeOutcomeUnknown, CodeNotFound, CodeUnauthorized, CodeInternal,
}

// Known reports whether c is one of Codes.
func (c Code) Known() bool {
	for _, k := range Codes {
		if c == k {
			return true
		}
	}
	return false
}

// Error is a coded error: the "error" object of an error reply, and a Go
// error. It is an immutable value once made.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes a coded error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
