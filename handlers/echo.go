package handlers

import (
	"sync"

	"github.com/gofiber/contrib/websocket"

	"github.com/duplex/duplex/wsconn"
)

const (
	echoReceivedPrefix = "服务端已收到消息:"
	echoHelloPrefix    = "服务端发来消息: Hello,"
)

// EchoReply appends the tutorial's answer to one text message to dst.
func EchoReply(dst, msg []byte) []byte {
	dst = append(dst, echoReceivedPrefix...)
	dst = append(dst, msg...)
	dst = append(dst, echoHelloPrefix...)
	return append(dst, msg...)
}

// replyBufPool holds reply buffers between messages: Reply does not keep
// the bytes it is given, so one buffer serves reply after reply.
var replyBufPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledReply keeps buffers grown by rare large replies out of the pool.
const maxPooledReply = 64 << 10

// Echo serves one /ws connection: a non-empty text message gets the
// tutorial's reply, an empty one gets nothing, and a binary message comes
// back verbatim.
func Echo(*websocket.Conn) wsconn.OpenFunc { return openEcho }

func openEcho(s *wsconn.Session) wsconn.Handler { return echoHandler{s} }

// echoHandler runs on its session's reader goroutine.
type echoHandler struct{ s *wsconn.Session }

func (h echoHandler) HandleMessage(kind wsconn.MessageType, data []byte) {
	switch kind {
	case wsconn.TextMessage:
		if len(data) == 0 {
			return
		}
		buf := replyBufPool.Get().(*[]byte)
		*buf = EchoReply((*buf)[:0], data)
		_ = h.s.Reply(wsconn.TextMessage, *buf)
		if cap(*buf) <= maxPooledReply {
			replyBufPool.Put(buf)
		}
	case wsconn.BinaryMessage:
		_ = h.s.Reply(wsconn.BinaryMessage, data)
	}
}

func (echoHandler) Closed() {}
