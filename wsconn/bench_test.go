package wsconn

import (
	"bytes"
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
