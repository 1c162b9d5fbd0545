package wsconn

// MessageType is the kind of a data message: text (UTF-8) or binary. Its
// values are the frame opcodes of RFC 6455 section 5.2.
type MessageType int

// The two data message types.
const (
	TextMessage   MessageType = opText
	BinaryMessage MessageType = opBinary
)

// String names the type for logs.
func (t MessageType) String() string {
	switch t {
	case TextMessage:
		return "text"
	case BinaryMessage:
		return "binary"
	}
	return "unknown"
}
