// Command floor is the lower bound of duplex's stack for benchmarks: a bare
// fasthttp server with fasthttp/websocket and no framework, answering every
// text message on /ws with the tutorial's reply (or the message itself with
// -reply verbatim, or with -reply subscribe the reply duplex gives to the
// load tool's first subscribe command, for the connect benchmark).
//
//	go run ./bench/floor -addr 127.0.0.1:9001 [-reply tutorial|verbatim|subscribe]
//
// One goroutine per connection reads a message and writes the reply in the
// same loop: the least work a correct echo server can do.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

const (
	tutorialPrefix = "服务端已收到消息:"
	tutorialMiddle = "服务端发来消息: Hello,"
	// subscribeReply is what duplex answers to the load tool's
	// `{"id":1,"op":"subscribe",...}`: the floor does not parse the
	// command, so the connect benchmark measures the stack alone.
	subscribeReply = `{"id":1,"result":{"offset":0,"epoch":"f100r0000000"}}`
)

// The -reply formats.
const (
	replyTutorial  = "tutorial"
	replyVerbatim  = "verbatim"
	replySubscribe = "subscribe"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	reply := flag.String("reply", "tutorial", `reply format: "tutorial", "verbatim" or "subscribe"`)
	readLimit := flag.Int64("read-limit", 64<<10, "largest accepted message in bytes")
	idle := flag.Duration("idle-timeout", 60*time.Second, "close a connection that sends nothing for this long")
	writeTimeout := flag.Duration("write-timeout", 10*time.Second, "deadline for each reply")
	flag.Parse()
	switch *reply {
	case replyTutorial, replyVerbatim, replySubscribe:
	default:
		log.Fatalf("floor: -reply must be tutorial, verbatim or subscribe, got %q", *reply)
	}

	upgrader := websocket.FastHTTPUpgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
	}
	handle := func(c *websocket.Conn) {
		defer c.Close()
		c.SetReadLimit(*readLimit)
		buf := make([]byte, 0, 4096)
		for {
			if err := c.SetReadDeadline(time.Now().Add(*idle)); err != nil {
				return
			}
			mt, r, err := c.NextReader()
			if err != nil {
				return // first read error ends the connection
			}
			buf, err = readAll(r, buf[:0])
			if err != nil {
				return
			}
			if mt != websocket.TextMessage || len(buf) == 0 {
				continue // the tutorial answers non-empty text only
			}
			if err := c.SetWriteDeadline(time.Now().Add(*writeTimeout)); err != nil {
				return
			}
			if err := writeReply(c, buf, *reply); err != nil {
				return
			}
		}
	}

	srv := &fasthttp.Server{
		Name: "floor",
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != "/ws" {
				ctx.Error("not found", fasthttp.StatusNotFound)
				return
			}
			// Upgrade answers a bad handshake itself.
			_ = upgrader.Upgrade(ctx, handle)
		},
		ReadTimeout:  10 * time.Second, // bounds the handshake
		WriteTimeout: 10 * time.Second,
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("floor: %v", err)
	}
	fmt.Fprintf(os.Stderr, "floor: listening on ws://%s/ws (reply %s)\n", ln.Addr(), *reply)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Stops accepting; open WebSockets end with the process.
		_ = srv.ShutdownWithContext(context.Background())
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatalf("floor: %v", err)
	}
}

// writeReply writes the reply to msg in the given -reply format as one
// text frame without building it in a separate buffer.
func writeReply(c *websocket.Conn, msg []byte, format string) error {
	switch format {
	case replyVerbatim:
		return c.WriteMessage(websocket.TextMessage, msg)
	case replySubscribe:
		return c.WriteMessage(websocket.TextMessage, []byte(subscribeReply))
	}
	w, err := c.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, tutorialPrefix)
	if err == nil {
		_, err = w.Write(msg)
	}
	if err == nil {
		_, err = io.WriteString(w, tutorialMiddle)
	}
	if err == nil {
		_, err = w.Write(msg)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// readAll appends the whole message from r to buf, reusing its memory.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
