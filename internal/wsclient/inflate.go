package wsclient

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// deflateTail ends every compressed message before inflating it: the
// empty stored block the server removed (RFC 7692 section 7.2.2), then a
// final empty stored block, so that the reader ends at io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflater is a flate reader and its input, pooled: a connection keeps
// only its window (the dictionary), not a decompressor.
type inflater struct {
	src bytes.Reader // a ByteReader: flate reads no further than it needs
	fr  io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	inf := &inflater{}
	inf.fr = flate.NewReader(&inf.src)
	return inf
}}

// inflate appends the inflated c.zbuf (a compressed message's payload) to
// dst. With context takeover it inflates against the window of the
// previous compressed messages and then adds the output to it.
func (c *Conn) inflate(dst []byte) ([]byte, error) {
	c.zbuf = append(c.zbuf, deflateTail...)
	inf := inflaters.Get().(*inflater)
	defer inflaters.Put(inf)
	inf.src.Reset(c.zbuf)
	var dict []byte
	if c.deflate.contextTakeover {
		dict = c.window
	}
	_ = inf.fr.(flate.Resetter).Reset(&inf.src, dict)
	start := len(dst)
	for {
		room := c.maxBytes + 1 - int64(len(dst)-start) // one more byte tells "too big"
		if room <= 0 {
			return dst, c.tooBig()
		}
		if len(dst) == cap(dst) {
			dst = append(dst, make([]byte, max(minInflateGrowth, len(dst)-start))...)[:len(dst)]
		}
		end := cap(dst)
		if int64(end-len(dst)) > room {
			end = len(dst) + int(room)
		}
		n, err := inf.fr.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst, c.fail(CloseInvalidPayload, "corrupt compressed data: "+err.Error())
		}
	}
	if int64(len(dst)-start) > c.maxBytes {
		return dst, c.tooBig()
	}
	if c.deflate.contextTakeover {
		c.remember(dst[start:])
	}
	if cap(c.zbuf) > keepBufferBytes {
		c.zbuf = nil
	} else {
		c.zbuf = c.zbuf[:0]
	}
	return dst, nil
}

// remember appends a compressed message's inflated bytes to the window,
// keeping its last 2^windowBits bytes (what the server's compressor may
// still refer to).
func (c *Conn) remember(out []byte) {
	size := 1 << c.deflate.windowBits
	if len(out) >= size {
		if cap(c.window) < size {
			c.window = make([]byte, 0, size)
		}
		c.window = append(c.window[:0], out[len(out)-size:]...)
		return
	}
	if keep := size - len(out); len(c.window) > keep {
		n := copy(c.window, c.window[len(c.window)-keep:])
		c.window = c.window[:n]
	}
	if need := len(c.window) + len(out); need > cap(c.window) {
		grown := make([]byte, len(c.window), min(size, max(need, 2*cap(c.window), initialWindowBytes)))
		copy(grown, c.window)
		c.window = grown
	}
	c.window = append(c.window, out...)
}
