package protocol

import (
	"unicode/utf8"
)

// Close codes the server sends on its own initiative (RFC 6455 leaves
// 4000–4999 to applications). By convention, a code from 4000 to 4499
// lets the client reconnect, and one from 4500 to 4999 asks it not to
// (duplex.js follows it, and does not reconnect after 1000 or 1008
// either).
const (
	// CloseDisconnected (4000): the server's API disconnected the
	// connection, when the request named no code of its own.
	CloseDisconnected = 4000
	// CloseTokenExpired (4001): the connection's token expired and was
	// not refreshed in time. Reconnect with a new token.
	CloseTokenExpired = 4001
	// closeNoReconnectFrom is the first code that asks the client not to
	// reconnect.
	closeNoReconnectFrom = 4500
	// CloseNormal (1000) and ClosePolicyViolation (1008) are the only
	// RFC 6455 codes the API may ask for.
	CloseNormal          = 1000
	ClosePolicyViolation = 1008
)

// MaxCloseReasonBytes is the longest close reason: a control frame's 125
// bytes of payload less the 2-byte code.
const MaxCloseReasonBytes = 123

// ValidServerCloseCode reports whether code is one the server's API may
// close a connection with: 4000–4999, 1000 or 1008.
func ValidServerCloseCode(code int) bool {
	return code >= 4000 && code <= 4999 || code == CloseNormal || code == ClosePolicyViolation
}

// ReconnectAllowed reports whether a client should reconnect after the
// server closed with code: not after 1000, 1008 or 4500–4999.
func ReconnectAllowed(code int) bool {
	return code != CloseNormal && code != ClosePolicyViolation && !(code >= closeNoReconnectFrom && code <= 4999)
}

// CheckCloseReason checks a close reason: valid UTF-8 of at most
// MaxCloseReasonBytes bytes. Errors are bad_request.
func CheckCloseReason(reason string) *Error {
	if !utf8.ValidString(reason) {
		return Errorf(CodeBadRequest, "reason is not valid UTF-8")
	}
	if len(reason) > MaxCloseReasonBytes {
		return Errorf(CodeBadRequest, "reason is longer than %d bytes", MaxCloseReasonBytes)
	}
	return nil
}

// RefreshResult answers refresh: the seconds left until the server closes
// the connection with CloseTokenExpired unless it is refreshed again (at
// least 1).
type RefreshResult struct {
	ExpiresIn int64 `json:"expires_in"`
}

// Unsubscribed is the body of the push that tells a client the server
// ended one of its subscriptions: {"channel":"…","unsubscribed":{"reason":"…"}}.
type Unsubscribed struct {
	Reason string `json:"reason"`
}

// EncodeUnsubscribed encodes {"channel":"…","unsubscribed":{"reason":"…"}}.
func EncodeUnsubscribed(channel, reason string) []byte {
	ch, _ := marshal(channel) // strings only: cannot fail
	body, _ := marshal(Unsubscribed{Reason: reason})
	b := make([]byte, 0, len(ch)+len(body)+32)
	b = append(b, `{"channel":`...)
	b = append(b, ch...)
	b = append(b, `,"unsubscribed":`...)
	b = append(b, body...)
	return append(b, '}')
}
