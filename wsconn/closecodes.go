package wsconn

import (
	"encoding/binary"
	"unicode/utf8"
)

// CloseCode is the status code of a close frame (RFC 6455 section 7.4).
// Every code a client can receive from duplex is listed here and in the
// README.
type CloseCode int

// Close codes the server sends, from RFC 6455 section 7.4.1.
const (
	// CloseNormal (1000): the purpose of the connection was fulfilled.
	CloseNormal CloseCode = 1000
	// CloseGoingAway (1001): the server is shutting down.
	CloseGoingAway CloseCode = 1001
	// CloseProtocolError (1002): a framing violation.
	CloseProtocolError CloseCode = 1002
	// CloseUnsupportedData (1003): a message of a type the endpoint does
	// not speak, such as binary on a JSON protocol.
	CloseUnsupportedData CloseCode = 1003
	// CloseInvalidPayload (1007): a text message that is not valid UTF-8.
	CloseInvalidPayload CloseCode = 1007
	// ClosePolicyViolation (1008): the client broke a server policy.
	ClosePolicyViolation CloseCode = 1008
	// CloseMessageTooBig (1009): a message over MaxMessageBytes.
	CloseMessageTooBig CloseCode = 1009
	// CloseInternalError (1011): the server failed while handling a message.
	CloseInternalError CloseCode = 1011
	// CloseTryAgainLater (1013): the server is at its connection cap, or the
	// client read too slowly and its send queue filled up.
	CloseTryAgainLater CloseCode = 1013
)

// noStatusCode (1005) stands for a close frame without a code; it is never
// sent on the wire, and answering it means an empty close frame.
const noStatusCode CloseCode = 1005

// maxCloseReason is the longest reason a close frame carries: a control
// frame's 125 bytes less the 2-byte code.
const maxCloseReason = maxControlPayload - 2

// AppendClosePayload appends the payload of a close frame with code and
// reason to dst: nothing for noStatusCode, else the code and the reason,
// cut at a rune boundary to fit the 125-byte control frame. It is a pure
// function, safe from any goroutine.
func AppendClosePayload(dst []byte, code CloseCode, reason string) []byte {
	if code == noStatusCode {
		return dst
	}
	if len(reason) > maxCloseReason {
		cut := maxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// CloseFrame is a whole server close frame with code and reason, ready to
// write to a connection no session owns (a refused or failed upgrade).
// Safe from any goroutine.
func CloseFrame(code CloseCode, reason string) []byte {
	return appendFrame(nil, opClose, AppendClosePayload(nil, code, reason))
}
