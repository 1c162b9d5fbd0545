package wsconn

import (
	"bytes"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// benchSession is a session on one end of a loopback TCP connection whose
// other end a goroutine drains as fast as it can, counting the bytes.
func benchSession(b *testing.B, lim Limits) (s *Session, received *atomic.Int64) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	received = new(atomic.Int64)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 256<<10)
		for {
			n, err := client.Read(buf)
			received.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	s = newSession(NewRegistry(RegistryConfig{MaxSessions: 1}), 1, server, server, true, &lim)
	b.Cleanup(func() {
		s.forceClose()
		s.queue.stop() // the writer, if one runs, has exited
		server.Close()
		client.Close()
		<-drained
	})
	return s, received
}

// waitReceived waits until the client has read want bytes.
func waitReceived(received *atomic.Int64, want int64) {
	for received.Load() < want {
		time.Sleep(10 * time.Microsecond)
	}
}

// BenchmarkSessionSend is a delivery to an idle client: the fan-out's own
// write(2) (writeNow), with no deadline and no writer.
func BenchmarkSessionSend(b *testing.B) {
	s, received := benchSession(b, testLimits)
	payload := bytes.Repeat([]byte("x"), 64)
	frame := int64(len(appendFrame(nil, opText, payload)))
	var sent int64
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(TextMessage, payload); err != nil {
			b.Fatal(err)
		}
		sent += frame
	}
	waitReceived(received, sent)
}

// BenchmarkSessionFlush is the writer's path: a backlog of messages queued
// while a write was under way, then written by the writer goroutine in
// one flush (writeAll), until the client has read it all.
func BenchmarkSessionFlush(b *testing.B) {
	for _, c := range []struct {
		name        string
		msgs, bytes int
	}{
		{"16x64B", 16, 64},         // one small write
		{"64x16KiB", 64, 16 << 10}, // 1 MiB: a full queue
	} {
		b.Run(c.name, func(b *testing.B) {
			s, received := benchSession(b, testLimits)
			payload := bytes.Repeat([]byte("x"), c.bytes)
			frame := int64(len(appendFrame(nil, opBinary, payload)))
			var sent int64
			b.SetBytes(int64(c.msgs * c.bytes))
			b.ReportAllocs()
			for b.Loop() {
				s.writeMu.Lock() // as during a write: everything queues
				for range c.msgs {
					if err := s.Send(BinaryMessage, payload); err != nil {
						b.Fatal(err)
					}
				}
				s.writeMu.Unlock()
				sent += frame * int64(c.msgs)
				waitReceived(received, sent)
			}
		})
	}
}

// BenchmarkDeflateMessage is the compression of one publication, paid
// once per fan-out whatever its number of subscribers.
func BenchmarkDeflateMessage(b *testing.B) {
	for _, size := range []int{64, 1 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			msg := chatJSON(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var out int
			for b.Loop() {
				out = len(DeflateMessage(msg))
			}
			b.ReportMetric(float64(out)/float64(size), "ratio")
		})
	}
}

// BenchmarkDeflateBatching weighs the two ways a /realtime writer can
// send a backlog of publications to a client that negotiated deflate:
// "bypass" writes each publication's compressed payload, shared by the
// whole fan-out (compressed once per benchFanout subscribers), as a frame
// of its own; "batch" joins the backlog into one frame as for plain
// clients and compresses that, once per subscriber, since no two
// subscribers' backlogs are alike. ns/op is one subscriber's backlog;
// wire-B/msg what it costs on the wire.
func BenchmarkDeflateBatching(b *testing.B) {
	const backlog, benchFanout = 16, 1000
	lim := testLimits
	lim.Deflate = true // every message compressed, the 64-byte ones too
	for _, size := range []int{64, 1 << 10} {
		msgs := make([][]byte, backlog)
		for i := range msgs {
			msgs[i] = chatJSON(size + i) // not alike, as publications are not
		}
		b.Run(fmt.Sprintf("bypass/%dB", size), func(b *testing.B) {
			s, received := benchSession(b, lim)
			var shared []*SharedMessage
			var sent int64
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%benchFanout == 0 {
					shared = shared[:0]
					for _, m := range msgs {
						shared = append(shared, NewSharedMessage(TextMessage, m, 0, 0, nil))
					}
				}
				s.writeMu.Lock() // as during a write: everything queues
				for _, m := range shared {
					if _, err := s.SendShared(m, false); err != nil {
						b.Fatal(err)
					}
					z := m.compressedAlone()
					sent += int64(len(appendFrameHeader(nil, opText, len(z))) + len(z))
				}
				s.writeMu.Unlock()
				waitReceived(received, sent)
			}
			b.ReportMetric(float64(sent)/float64(b.N*backlog), "wire-B/msg")
		})
		b.Run(fmt.Sprintf("batch/%dB", size), func(b *testing.B) {
			s, received := benchSession(b, lim)
			var sent int64
			b.ReportAllocs()
			for b.Loop() {
				joined := appendJoinedTextFrame(nil, outMessagesOf(msgs))
				_, payload := splitFrame(joined)
				z := DeflateMessage(payload)
				if err := s.send(opText|rsv1Bit, z); err != nil {
					b.Fatal(err)
				}
				sent += int64(len(appendFrameHeader(nil, opText, len(z))) + len(z))
				waitReceived(received, sent)
			}
			b.ReportMetric(float64(sent)/float64(b.N*backlog), "wire-B/msg")
		})
	}
}

// outMessagesOf makes queued text messages of msgs.
func outMessagesOf(msgs [][]byte) []outMessage {
	out := make([]outMessage, len(msgs))
	for i, m := range msgs {
		out[i] = outMessage{kind: opText, data: m}
	}
	return out
}

// splitFrame splits one server frame into its header and payload.
func splitFrame(f []byte) (hdr, payload []byte) {
	n := 2
	switch f[1] & 0x7F {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	return f[:n], f[n:]
}
