package wsconn

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692), as duplex negotiates it: the client
// never keeps its context (client_no_context_takeover), so every message
// it sends is inflated on its own; the server keeps no compressor per
// connection either. Compressors and decompressors are pooled, held only
// while one message is compressed or inflated: an idle session with
// deflate negotiated costs what one without does, but for the id of the
// last compressed message it wrote (SharedMessage). Where the client lets
// the server take its context over (Limits.DeflateContext), a channel's
// publication may be compressed against the previous one, once for all
// the subscribers whose last compressed message that was. klauspost/
// compress's flate is used for its speed; it is already in the module
// graph through fasthttp/websocket.

// rsv1Bit is the RSV1 bit of a frame's first byte, which marks the first
// frame of a compressed message (RFC 7692 section 6). In an outMessage's
// kind it travels with the opcode, so the frame header carries it.
const rsv1Bit = 0x40

// deflateLevel trades ratio for speed. BestSpeed already shrinks chat-like
// JSON 3-5x, and a fan-out compresses each publication once however many
// subscribers it has, so a slower level buys little.
const deflateLevel = flate.BestSpeed

// deflateTail is the end of a sync flush (an empty stored block), which
// a sender strips from a compressed message (RFC 7692 section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflateTail is what a receiver puts back after a compressed message
// before inflating it (section 7.2.2): the sync flush's tail, then an
// empty final block, so that the inflater ends with io.EOF rather than
// waiting for more.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// appendBuffer lets a flate.Writer append to a slice.
type appendBuffer struct{ b []byte }

func (a *appendBuffer) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// compressor is one pooled flate.Writer with the buffer it writes to.
type compressor struct {
	w   *flate.Writer
	out appendBuffer
}

var compressorPool = sync.Pool{New: func() any {
	c := &compressor{}
	c.w, _ = flate.NewWriter(&c.out, deflateLevel) // the level is valid
	return c
}}

// DeflateMessage returns the payload of data as one permessage-deflate
// message compressed on its own, which any client that negotiated deflate
// can inflate: the sync flush's tail stripped, in a new slice the caller
// owns. It is a pure function, safe from any goroutine.
func DeflateMessage(data []byte) []byte { return deflateAfter(data, nil) }

// deflateAfter is DeflateMessage against a dictionary: the message is
// compressed as if it followed dict in the same stream, so it may refer
// to dict's last 32 KiB, and only a client whose inflater's window ends
// with dict can inflate it (context takeover, RFC 7692 section 7.2.3.2).
// nil dict compresses the message on its own.
func deflateAfter(data, dict []byte) []byte {
	c := compressorPool.Get().(*compressor)
	c.out.b = make([]byte, 0, len(data)/2+16)
	// ResetDict keeps dict for later Resets; the pooled writer is always
	// reset this way, so none is ever compressed against an old one.
	c.w.ResetDict(&c.out, dict)
	// Writes to an appendBuffer never fail.
	_, _ = c.w.Write(data)
	_ = c.w.Flush()
	out := bytes.TrimSuffix(c.out.b, deflateTail)
	c.out.b = nil
	if dict != nil {
		c.w.ResetDict(nil, nil) // keep no reference to dict in the pool
	}
	compressorPool.Put(c)
	return out
}

// inflater is one pooled decompressor with the reader of its input.
type inflater struct {
	r  io.ReadCloser
	in tailedReader
}

var inflaterPool = sync.Pool{New: func() any {
	f := &inflater{}
	f.r = flate.NewReader(&f.in)
	return f
}}

// tailedReader reads a message's payload and then inflateTail. It is a
// flate.Reader (an io.ByteReader too), so the decompressor reads it
// directly instead of through a bufio.Reader of its own per message.
type tailedReader struct{ payload, tail []byte }

func (t *tailedReader) reset(payload []byte) { t.payload, t.tail = payload, inflateTail }

func (t *tailedReader) Read(p []byte) (int, error) {
	if len(t.payload) == 0 && len(t.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, t.payload)
	t.payload = t.payload[n:]
	m := copy(p[n:], t.tail)
	t.tail = t.tail[m:]
	return n + m, nil
}

func (t *tailedReader) ReadByte() (byte, error) {
	switch {
	case len(t.payload) > 0:
		b := t.payload[0]
		t.payload = t.payload[1:]
		return b, nil
	case len(t.tail) > 0:
		b := t.tail[0]
		t.tail = t.tail[1:]
		return b, nil
	}
	return 0, io.EOF
}

// inflateChunk is how much a message's inflated buffer grows by at a time:
// a decompression bomb costs at most the size limit plus this, never what
// it claims to inflate to.
const inflateChunk = 4096

// maxPooledInflate keeps buffers grown by rare large messages out of the
// pool.
const maxPooledInflate = 64 << 10

var inflateBufPool = sync.Pool{New: func() any { return new([]byte) }}

// Violations of a compressed message.
var (
	errInflatedTooBig = violation{CloseMessageTooBig, "inflated message over the size limit"}
	errBadDeflate     = violation{CloseInvalidPayload, "invalid compressed data"}
)

// inflate inflates a whole compressed message's payload into a pooled
// buffer, which the caller returns with releaseInflated once the message
// is handled. It stops, with 1009, as soon as the inflated size passes
// limit, and, for a text message (text non-nil), with 1007 as soon as the
// inflated bytes cannot be UTF-8.
func inflate(payload []byte, limit int64, text *utf8Stream) (*[]byte, *violation) {
	f := inflaterPool.Get().(*inflater)
	defer inflaterPool.Put(f)
	f.in.reset(payload)
	defer f.in.reset(nil) // keep no reference to the client's bytes
	if err := f.r.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, &errBadDeflate
	}
	buf := inflateBufPool.Get().(*[]byte)
	out := (*buf)[:0]
	if text != nil {
		text.reset()
	}
	for {
		if len(out) == cap(out) {
			out = slices.Grow(out, inflateChunk)
		}
		room := out[len(out):cap(out)]
		if over := int64(len(out)+len(room)) - (limit + 1); over > 0 {
			room = room[:int64(len(room))-over] // read one byte past the limit, no more
		}
		n, err := f.r.Read(room)
		if text != nil && !text.write(room[:n]) {
			return releaseWith(buf, out, &errInvalidUTF8)
		}
		out = out[:len(out)+n]
		if int64(len(out)) > limit {
			return releaseWith(buf, out, &errInflatedTooBig)
		}
		switch {
		case errors.Is(err, io.EOF):
			// The tail's final block, or one the payload ended with
			// (RFC 7692 section 7.2.3.3): what follows is ignored.
			if text != nil && !text.complete() {
				return releaseWith(buf, out, &errInvalidUTF8)
			}
			*buf = out
			return buf, nil
		case err != nil:
			return releaseWith(buf, out, &errBadDeflate)
		}
	}
}

// releaseWith returns a buffer that inflate gives up on and reports v.
func releaseWith(buf *[]byte, out []byte, v *violation) (*[]byte, *violation) {
	*buf = out
	releaseInflated(buf)
	return nil, v
}

// releaseInflated returns an inflated message's buffer to the pool.
func releaseInflated(buf *[]byte) {
	if cap(*buf) > maxPooledInflate {
		return
	}
	*buf = (*buf)[:0]
	inflateBufPool.Put(buf)
}
