package wsconn

import "encoding/binary"

// finBit marks the last (here: the only) frame of a message.
const finBit = 0x80

// appendFrameHeader appends the header of one unfragmented server frame
// (FIN set, no mask: RFC 6455 section 5.2; RSV1 only if opcode carries
// rsv1Bit, for a compressed message) for a payload of n bytes. Server frames are never masked, so the same payload frames the
// same way for every client.
func appendFrameHeader(dst []byte, opcode int, n int) []byte {
	b0 := byte(finBit | opcode)
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

// appendFrame appends one whole frame.
func appendFrame(dst []byte, opcode int, payload []byte) []byte {
	return append(appendFrameHeader(dst, opcode, len(payload)), payload...)
}

// appendJoinedTextFrame appends one text frame whose payload is msgs
// joined by newlines.
func appendJoinedTextFrame(dst []byte, msgs []outMessage) []byte {
	n := len(msgs) - 1
	for _, m := range msgs {
		n += len(m.data)
	}
	dst = appendFrameHeader(dst, opText, n)
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, m.data...)
	}
	return dst
}
