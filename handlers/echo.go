package handlers

import (
	"github.com/fasthttp/websocket"
	fiberws "github.com/gofiber/contrib/websocket"

	"github.com/duplex/duplex/wsconn"
)

const (
	echoReceivedPrefix = "服务端已收到消息:"
	echoHelloPrefix    = "服务端发来消息: Hello,"
)

// EchoReply is the tutorial's answer to one text message.
func EchoReply(msg []byte) []byte {
	out := make([]byte, 0, len(echoReceivedPrefix)+len(echoHelloPrefix)+2*len(msg))
	out = append(out, echoReceivedPrefix...)
	out = append(out, msg...)
	out = append(out, echoHelloPrefix...)
	return append(out, msg...)
}

// Echo serves one /ws connection: a non-empty text message gets the
// tutorial's reply, an empty one gets nothing, and a binary message comes
// back verbatim.
func Echo(_ *fiberws.Conn, s *wsconn.Session) wsconn.Handler { return echoHandler{s} }

// echoHandler runs on its session's reader goroutine.
type echoHandler struct{ s *wsconn.Session }

func (h echoHandler) HandleMessage(kind int, data []byte) {
	switch kind {
	case websocket.TextMessage:
		if len(data) == 0 {
			return
		}
		_ = h.s.Send(websocket.TextMessage, EchoReply(data))
	case websocket.BinaryMessage:
		_ = h.s.Send(websocket.BinaryMessage, data)
	}
}

func (echoHandler) Closed() {}
