package wsconn

import "github.com/fasthttp/websocket"

// Close codes the server sends, from RFC 6455 section 7.4.1. Every code a
// client can receive from duplex is listed here and in the README.
const (
	// CloseGoingAway (1001): the server is shutting down.
	CloseGoingAway = websocket.CloseGoingAway
	// CloseProtocolError (1002): a framing violation; the library sends it.
	CloseProtocolError = websocket.CloseProtocolError
	// CloseUnsupportedData (1003): a message of a type the endpoint does
	// not speak, such as binary on a JSON protocol.
	CloseUnsupportedData = websocket.CloseUnsupportedData
	// CloseInvalidPayload (1007): a text message that is not valid UTF-8.
	CloseInvalidPayload = websocket.CloseInvalidFramePayloadData
	// ClosePolicyViolation (1008): the client broke a server policy.
	ClosePolicyViolation = websocket.ClosePolicyViolation
	// CloseMessageTooBig (1009): a message over MaxMessageBytes; the
	// library sends it.
	CloseMessageTooBig = websocket.CloseMessageTooBig
	// CloseInternalError (1011): the server failed while handling a message.
	CloseInternalError = websocket.CloseInternalServerErr
	// CloseTryAgainLater (1013): the server is at its connection cap, or the
	// client read too slowly and its send queue filled up.
	CloseTryAgainLater = websocket.CloseTryAgainLater
)
