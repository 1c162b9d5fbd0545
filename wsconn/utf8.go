package wsconn

import "unicode/utf8"

// utf8Stream validates UTF-8 text that arrives in pieces (fragments, and
// the parts of a frame as they are read), so that a message is refused as
// soon as its bytes cannot become valid UTF-8, not once it is complete
// (Autobahn 6.4.*). It carries the incomplete sequence a piece ends with
// over to the next.
//
// Concurrency: one goroutine at a time (the session's reader).
type utf8Stream struct {
	tail [utf8.UTFMax]byte // an incomplete sequence at the end of the last piece
	n    int               // bytes in tail
}

func (u *utf8Stream) reset() { u.n = 0 }

// complete reports whether the text so far ends on a whole character.
func (u *utf8Stream) complete() bool { return u.n == 0 }

// write checks the next piece; false means the text so far can no longer
// be valid UTF-8, whatever follows.
func (u *utf8Stream) write(b []byte) bool {
	if u.n > 0 {
		need := seqLen(u.tail[0])
		take := min(need-u.n, len(b))
		copy(u.tail[u.n:], b[:take])
		u.n += take
		b = b[take:]
		if u.n < need {
			return validPrefix(u.tail[:u.n])
		}
		if !utf8.Valid(u.tail[:need]) {
			return false
		}
		u.n = 0
	}
	// An incomplete sequence can only be the last three bytes or fewer.
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(b[:cut]) {
		return false
	}
	u.n = copy(u.tail[:], b[cut:])
	return validPrefix(u.tail[:u.n])
}

// seqLen is the length of the sequence lead starts (1 for an invalid lead,
// which validPrefix then refuses).
func seqLen(lead byte) int {
	switch {
	case lead >= 0xF0:
		return 4
	case lead >= 0xE0:
		return 3
	case lead >= 0xC0:
		return 2
	}
	return 1
}

// validPrefix reports whether p, the start of a multi-byte sequence
// shorter than its lead byte says, can still become a valid character
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
func validPrefix(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if p[0] < 0xC2 || p[0] > 0xF4 {
		return false
	}
	if len(p) == 1 {
		return true
	}
	// The second byte's range depends on the lead; the rest are 80..BF.
	lo, hi := byte(0x80), byte(0xBF)
	switch p[0] {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if p[1] < lo || p[1] > hi {
		return false
	}
	for _, c := range p[2:] {
		if c < 0x80 || c > 0xBF {
			return false
		}
	}
	return true
}
