package wsconn

import (
	"encoding/binary"
	"unicode/utf8"
)

// Opcodes of RFC 6455 section 5.2. The data and control ones are the
// message kinds Send and the handlers use.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxControlPayload is the largest payload a control frame may carry.
const maxControlPayload = 125

// frameEvents receives what a frameParser finds, in stream order.
type frameEvents interface {
	// message is one complete data message; data is valid only during the
	// call.
	message(opcode int, data []byte)
	// ping and pong are control frames; payload is valid only during the
	// call.
	ping(payload []byte)
	pong()
	// closeFrame is the client's close frame: its code (1005 when it had
	// none) and whether it was well formed. Nothing is parsed after it.
	closeFrame(code CloseCode)
}

// violation is a protocol error in the client's stream: the close code to
// send and why.
type violation struct {
	code   CloseCode
	reason string
}

// frameParser reads the client side of RFC 6455 framing from a byte stream
// that arrives in arbitrary pieces: it checks each frame header, unmasks
// payloads in place, joins fragmented messages, and enforces the message
// size limit before buffering anything. Between messages it holds no
// buffer at all, which is what an idle connection costs.
//
// Concurrency: one goroutine at a time (the session's current reader).
type frameParser struct {
	maxMessage int64

	partial []byte     // an incomplete frame carried over to the next feed
	checked int        // payload bytes of that frame already unmasked and checked
	msg     []byte     // payload of that message so far
	text    utf8Stream // the text message in progress, checked as it arrives
	// The opcode and the flags last, together: padding after each would
	// cost every session 8 bytes (TestSessionFitsItsSizeClass).
	msgOp   uint8 // opcode of the fragmented message in progress, 0 if none
	deflate bool  // permessage-deflate was negotiated: RSV1 marks a compressed message
	msgRSV1 bool  // the fragmented message in progress is compressed
	done    bool  // a close frame or a violation ended the stream
}

// feed parses data, which it may modify (payloads are unmasked in place),
// reporting each complete frame to ev. It returns a violation when the
// stream breaks the protocol; after that, or after a close frame, it
// ignores everything.
func (p *frameParser) feed(data []byte, ev frameEvents) *violation {
	if p.done {
		return nil
	}
	// A frame split across reads: join, and parse the joined bytes. The
	// buffer was sized for the whole frame when it was kept, so a large
	// frame arriving in many reads is not copied over and over.
	joined := len(p.partial) > 0
	if joined {
		data = append(p.partial, data...)
		p.partial = nil
	}
	for start := true; len(data) > 0; start = false {
		hdr, n, ok := decodeHeader(data)
		if !ok {
			if v := p.checkFirstByte(data[0]); v != nil {
				return p.fail(v)
			}
			p.keep(data, maxHeaderLen, joined && start)
			return nil
		}
		if v := p.checkHeader(data[0], data[1], n); v != nil {
			return p.fail(v)
		}
		need := hdr + int(n) // checkHeader bounds n by the message limit
		if len(data) < need {
			if v := p.checkPartial(data, hdr); v != nil {
				return p.fail(v)
			}
			p.keep(data, need, joined && start)
			return nil
		}
		if v := p.handle(data[:need], hdr, ev); v != nil {
			return p.fail(v)
		}
		if p.done {
			return nil
		}
		data = data[need:]
	}
	return nil
}

// onlyPings reports whether data, fed next, holds nothing but whole,
// well-formed pings and pongs: FIN set, no reserved bit, masked, at most
// maxControlPayload bytes each, with no incomplete frame carried over.
// Feeding such bytes only ever calls ping and pong, never message or
// closeFrame, and never fails, so the poller may feed them itself.
func (p *frameParser) onlyPings(data []byte) bool {
	if p.done || len(p.partial) > 0 || len(data) == 0 {
		return false
	}
	for len(data) > 0 {
		if len(data) < 2 || data[0] != finBit|opPing && data[0] != finBit|opPong || data[1]&0x80 == 0 {
			return false
		}
		n := int(data[1] & 0x7F)
		if n > maxControlPayload || len(data) < 6+n { // 2 + the mask key + payload
			return false
		}
		data = data[6+n:]
	}
	return true
}

// keep carries an incomplete frame over to the next feed, in a buffer with
// room for size bytes. reuse says data already starts such a buffer (the
// one kept last time).
func (p *frameParser) keep(data []byte, size int, reuse bool) {
	if reuse && cap(data) >= size {
		p.partial = data
		return
	}
	p.partial = append(make([]byte, 0, max(size, len(data))), data...)
}

// maxHeaderLen is the longest client frame header: 2 bytes, an 8-byte
// length and the 4-byte mask key.
const maxHeaderLen = 14

// decodeHeader reads the header at the start of b: its length (the mask
// key included) and the payload length it declares. ok is false while b
// does not hold the whole header.
func decodeHeader(b []byte) (hdr int, n uint64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	n, hdr = uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, 0, false
		}
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, 0, false
		}
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	if b[1]&0x80 != 0 {
		hdr += 4
	}
	return hdr, n, len(b) >= hdr
}

// checkFirstByte checks a frame's first byte: its reserved bits and its
// opcode, given the fragmented message in progress. RSV1 is allowed only
// with deflate negotiated, and only on the first frame of a data message
// (RFC 7692 section 6.1): never on a control or continuation frame.
func (p *frameParser) checkFirstByte(b0 byte) *violation {
	fin, op := b0&0x80 != 0, int(b0&0x0F)
	switch {
	case b0&0x30 != 0:
		return &violation{CloseProtocolError, "reserved bits set without an extension"}
	case b0&rsv1Bit != 0 && !p.deflate:
		return &violation{CloseProtocolError, "RSV1 set but permessage-deflate was not negotiated"}
	case b0&rsv1Bit != 0 && op != opText && op != opBinary:
		return &violation{CloseProtocolError, "RSV1 set on a control or continuation frame"}
	}
	msgOp := p.msgOp
	switch {
	case op == opText || op == opBinary:
		if msgOp != 0 {
			return &violation{CloseProtocolError, "new message before the fragmented one ended"}
		}
	case op == opContinuation:
		if msgOp == 0 {
			return &violation{CloseProtocolError, "continuation frame with nothing to continue"}
		}
	case op == opClose || op == opPing || op == opPong:
		if !fin {
			return &violation{CloseProtocolError, "fragmented control frame"}
		}
	default:
		return &violation{CloseProtocolError, "reserved opcode"}
	}
	return nil
}

// checkHeader checks a complete header, given its first two bytes and the
// payload length it declares, before the payload is buffered: the first
// byte, the mask, and the lengths.
func (p *frameParser) checkHeader(b0, b1 byte, n uint64) *violation {
	if v := p.checkFirstByte(b0); v != nil {
		return v
	}
	if b1&0x80 == 0 {
		return &violation{CloseProtocolError, "unmasked client frame"}
	}
	op := int(b0 & 0x0F)
	switch {
	case op >= opClose && n > maxControlPayload:
		return &violation{CloseProtocolError, "control frame over 125 bytes"}
	case n>>63 != 0:
		return &violation{CloseProtocolError, "frame length with its top bit set"}
	case op < opClose && uint64(len(p.msg))+n > uint64(p.wireLimit(b0)):
		return &violation{CloseMessageTooBig, "message over the size limit"}
	}
	return nil
}

// wireLimit is the most payload bytes a data message whose frame starts
// with b0 may carry on the wire: the message limit, or for a compressed
// message the limit plus what deflate may add to incompressible data (its
// inflated size is bounded by the limit itself, in inflate).
func (p *frameParser) wireLimit(b0 byte) int64 {
	if b0&rsv1Bit != 0 || p.msgRSV1 {
		return p.maxMessage + maxDeflateGrowth(p.maxMessage)
	}
	return p.maxMessage
}

// maxDeflateGrowth bounds how much deflate may enlarge n bytes: stored
// blocks cost 5 bytes per 64 KiB at worst, and a block header and the
// final empty block a few more.
func maxDeflateGrowth(n int64) int64 { return 5*(n/0xFFFF+1) + 16 }

// errInvalidUTF8 is the violation of text that cannot be UTF-8.
var errInvalidUTF8 = violation{CloseInvalidPayload, "invalid UTF-8 in text message"}

// checkPartial checks what has arrived of an incomplete frame, whose
// header (mask key included) is hdr bytes long: the payload of a text
// message is unmasked and checked as it comes, so that text which can no
// longer be UTF-8 fails at once rather than when the frame is whole.
func (p *frameParser) checkPartial(data []byte, hdr int) *violation {
	op := int(data[0] & 0x0F)
	if op != opText && (op != opContinuation || p.msgOp != opText) {
		return nil
	}
	if data[0]&rsv1Bit != 0 || p.msgRSV1 {
		return nil // compressed: its text is checked as it is inflated
	}
	if p.checked == 0 && op == opText {
		p.text.reset() // a new message starts with this frame
	}
	fresh := data[hdr+p.checked:]
	unmaskFrom(fresh, data[hdr-4:hdr], p.checked)
	p.checked += len(fresh)
	if !p.text.write(fresh) {
		return &errInvalidUTF8
	}
	return nil
}

// handle unmasks one whole, checked frame, whose header (mask key
// included) is hdr bytes long, and reports it. The first p.checked
// payload bytes were unmasked and checked already (checkPartial).
func (p *frameParser) handle(frame []byte, hdr int, ev frameEvents) *violation {
	key := frame[hdr-4 : hdr]
	payload := frame[hdr:]
	checked := p.checked
	p.checked = 0
	unmaskFrom(payload[checked:], key, checked)
	fin, op := frame[0]&0x80 != 0, int(frame[0]&0x0F)
	if frame[0]&rsv1Bit != 0 || (op == opContinuation && p.msgRSV1) {
		return p.handleDeflated(op, fin, payload, ev)
	}
	switch op {
	case opPing:
		ev.ping(payload)
	case opPong:
		ev.pong()
	case opClose:
		p.done = true
		code, v := parseClose(payload)
		if v != nil {
			return v
		}
		ev.closeFrame(code)
	case opBinary:
		if fin {
			ev.message(op, payload)
			return nil
		}
		p.msgOp = uint8(op)
		p.msg = append(p.msg[:0], payload...)
	case opText:
		if fin && checked == 0 {
			// The common case, a whole message in one read: no state.
			if !utf8.Valid(payload) {
				return &errInvalidUTF8
			}
			ev.message(op, payload)
			return nil
		}
		if checked == 0 {
			p.text.reset()
		}
		if !p.text.write(payload[checked:]) {
			return &errInvalidUTF8
		}
		if fin {
			return p.deliverText(payload, ev)
		}
		p.msgOp = uint8(op)
		p.msg = append(p.msg[:0], payload...)
	case opContinuation:
		if p.msgOp == opText && !p.text.write(payload[checked:]) {
			return &errInvalidUTF8
		}
		p.msg = append(p.msg, payload...)
		if fin {
			op, msg := int(p.msgOp), p.msg
			p.msgOp, p.msg = 0, nil
			if op == opText {
				return p.deliverText(msg, ev)
			}
			ev.message(op, msg)
		}
	}
	return nil
}

// handleDeflated handles one frame of a compressed message (RSV1 on its
// first frame): a whole message is inflated and reported; fragments are
// joined first, and the message is inflated once its last one is in.
func (p *frameParser) handleDeflated(op int, fin bool, payload []byte, ev frameEvents) *violation {
	if op != opContinuation {
		if !fin {
			p.msgOp, p.msgRSV1 = uint8(op), true
			p.msg = append(p.msg[:0], payload...)
			return nil
		}
		return p.deliverInflated(op, payload, ev)
	}
	p.msg = append(p.msg, payload...)
	if !fin {
		return nil
	}
	op, msg := int(p.msgOp), p.msg
	p.msgOp, p.msgRSV1, p.msg = 0, false, nil
	return p.deliverInflated(op, msg, ev)
}

// deliverInflated inflates a compressed message, within the message size
// limit and, for text, checking its UTF-8 as it goes, and reports it.
func (p *frameParser) deliverInflated(op int, compressed []byte, ev frameEvents) *violation {
	var text *utf8Stream
	if op == opText {
		text = &p.text
	}
	buf, v := inflate(compressed, p.maxMessage, text)
	if v != nil {
		return v
	}
	ev.message(op, *buf)
	releaseInflated(buf)
	return nil
}

// deliverText reports a complete text message whose every piece p.text
// has checked; it must not end inside a character.
func (p *frameParser) deliverText(data []byte, ev frameEvents) *violation {
	if !p.text.complete() {
		return &errInvalidUTF8
	}
	ev.message(opText, data)
	return nil
}

// parseClose reads a close frame's payload: empty, or a valid code and a
// UTF-8 reason.
func parseClose(payload []byte) (code CloseCode, v *violation) {
	switch {
	case len(payload) == 0:
		return noStatusCode, nil
	case len(payload) == 1:
		return 0, &violation{CloseProtocolError, "close frame with a 1-byte payload"}
	}
	code = CloseCode(binary.BigEndian.Uint16(payload))
	if !validReceivedCloseCode(code) {
		return 0, &violation{CloseProtocolError, "invalid close code"}
	}
	if !utf8.Valid(payload[2:]) {
		return 0, &violation{CloseInvalidPayload, "invalid UTF-8 in close reason"}
	}
	return code, nil
}

// validReceivedCloseCode follows RFC 6455 section 7.4 and the IANA
// registry: codes an endpoint may send, or the private range.
func validReceivedCloseCode(code CloseCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail ends the stream with v.
func (p *frameParser) fail(v *violation) *violation {
	p.done = true
	p.partial, p.msg, p.checked, p.msgRSV1 = nil, nil, 0, false
	return v
}

// unmaskFrom unmasks b, which starts at byte offset off of a payload
// masked with key: the key turns by off.
func unmaskFrom(b, key []byte, off int) {
	if off&3 == 0 {
		unmask(b, key)
		return
	}
	turned := [4]byte{key[off&3], key[(off+1)&3], key[(off+2)&3], key[(off+3)&3]}
	unmask(b, turned[:])
}

// unmask XORs b with the 4-byte mask key, eight bytes at a time where it
// can.
func unmask(b, key []byte) {
	if len(b) >= 8 {
		k4 := binary.LittleEndian.Uint32(key)
		k8 := uint64(k4) | uint64(k4)<<32
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k8)
			b = b[8:]
		}
	}
	// What is left starts at a multiple of 8 from the payload start, so
	// the key lines up again at its first byte.
	for i := range b {
		b[i] ^= key[i&3]
	}
}
