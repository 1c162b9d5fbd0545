package client

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/duplex/duplex/realtime/protocol"
)

// Error is a command the server refused: Code is one of the stable codes
// of realtime/protocol (protocol.CodeForbidden, protocol.CodeRateLimited,
// …), Message is the server's text, for people. Every call of Client and
// Conn that the server answers with an error reply returns one, so
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == protocol.CodeRateLimited { … }
//
// Concurrency: a value; safe to share once returned.
type Error struct {
	// Op is the command that was refused ("publish", "subscribe", …).
	Op protocol.Op
	// Channel is the command's channel, when it had one.
	Channel string
	// Code is the server's error code.
	Code protocol.Code
	// Message is the server's explanation.
	Message string
}

func (e *Error) Error() string {
	s := "duplex: " + string(e.Op)
	if e.Channel != "" {
		s += " " + e.Channel
	}
	return s + ": " + string(e.Code) + ": " + e.Message
}

// HasCode reports whether err is (or wraps) an *Error with code.
//
// Concurrency: a pure function.
func HasCode(err error, code protocol.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrClosed is returned by every call made on or after Close, and by calls
// that were waiting when Close came.
var ErrClosed = errors.New("duplex: client closed")

// ErrDisconnected is wrapped by the error of a command whose connection
// ended before its reply came. The command may or may not have been
// carried out (a publish may have been stored: recovery or history tells).
var ErrDisconnected = errors.New("duplex: disconnected before the reply")

// HandshakeError is a WebSocket upgrade the server refused with an HTTP
// status: 400 a bad name, 401 a bad token, 403 a foreign Origin, 429 and
// 503 the connection limits (docs/protocol.md, "Connecting").
//
// Concurrency: a value; safe to share once returned.
type HandshakeError struct {
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer's body (the server's JSON error).
	Body string
}

func (e *HandshakeError) Error() string {
	return "duplex: upgrade refused: HTTP " + strconv.Itoa(e.Status) + " " + e.Body
}

// CloseError is how the server ended a connection with a close frame:
// Code is the WebSocket close code (1001 shutting down, 1008 abuse, 1013
// a slow reader, …; docs/protocol.md, "Close codes").
//
// Concurrency: a value; safe to share once returned.
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("duplex: connection closed by the server: %d %s", e.Code, e.Text)
}

// CloseCode returns the close code of the close frame that ended a
// connection (err as Conn.Err returns it), or -1 when it ended without one
// (a broken socket, a local Close before any frame came).
//
// Concurrency: a pure function.
func CloseCode(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// replyError turns an error reply into an *Error.
func replyError(cmd protocol.Command, e *protocol.Error) *Error {
	return &Error{Op: cmd.Op, Channel: cmd.Channel, Code: e.Code, Message: e.Message}
}
