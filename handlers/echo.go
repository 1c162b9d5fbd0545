package handlers

import (
	"github.com/fasthttp/websocket"

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

// Echo is the /ws message handler: a non-empty text message gets the
// tutorial's reply, an empty one gets nothing, and a binary message comes
// back verbatim. It runs on each session's reader goroutine.
func Echo(s *wsconn.Session, kind int, data []byte) {
	switch kind {
	case websocket.TextMessage:
		if len(data) == 0 {
			return
		}
		_ = s.Send(websocket.TextMessage, EchoReply(data))
	case websocket.BinaryMessage:
		_ = s.Send(websocket.BinaryMessage, data)
	}
}
