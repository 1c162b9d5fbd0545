// Package wsclient is a small client side of a WebSocket connection (RFC
// 6455) over a net.Conn, for the load tool and for tests. It negotiates
// permessage-deflate (RFC 7692) as a browser does and inflates with
// context takeover when the server keeps its window across messages,
// which fasthttp/websocket's client cannot (it insists on
// server_no_context_takeover). It never compresses what it sends.
//
// It has no Fiber and no duplex imports.
package wsclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultReadBufferSize  = 4096
	DefaultMaxMessageBytes = 1 << 20
	// acceptGUID is RFC 6455's key suffix of Sec-WebSocket-Accept.
	acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// Options configure Dial. The zero value dials with net.Dialer, offers no
// extension, and allows messages of DefaultMaxMessageBytes.
//
// Concurrency: Dial only reads Options; one value may serve concurrent
// Dials if NetDial may.
type Options struct {
	// NetDial opens the transport (the load tool's counting dialer with its
	// source address); nil: a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Header holds further request headers (Origin, Cookie…).
	Header http.Header
	// Extensions is the Sec-WebSocket-Extensions offer, e.g. Chrome's
	// "permessage-deflate; client_max_window_bits"; "" offers none.
	// Only permessage-deflate can be offered.
	Extensions string
	// MaxMessageBytes bounds a message's size after inflation (and its
	// payload on the wire); 0: DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// ReadBufferSize is the bufio.Reader's size; 0: DefaultReadBufferSize.
	ReadBufferSize int
	// TLSConfig is used for wss:// URLs; nil: the defaults, with the URL's
	// host as the server name.
	TLSConfig *tls.Config
}

// HandshakeError: the server answered the upgrade with another status
// than 101 Switching Protocols.
//
// Concurrency: a value; safe to read from any goroutine.
type HandshakeError struct {
	StatusCode int
	Status     string // e.g. "403 Forbidden"
}

func (e *HandshakeError) Error() string {
	return "wsclient: the server answered the upgrade with HTTP " + e.Status
}

// ErrBadHandshake: the server's 101 answer is not a valid WebSocket
// upgrade (missing Upgrade/Connection, wrong Sec-WebSocket-Accept).
var ErrBadHandshake = errors.New("wsclient: bad upgrade answer")

// Dial opens a WebSocket connection to rawURL (ws:// or wss://) and does
// the handshake, bounded by ctx. A non-101 answer is a *HandshakeError; an
// unacceptable extension answer wraps ErrBadExtensions.
//
// Concurrency: safe to call from several goroutines at once.
func Dial(ctx context.Context, rawURL string, opt Options) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("wsclient: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("wsclient: scheme must be ws or wss, got %q", u.Scheme)
	}
	offer, err := parseOffer(opt.Extensions)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "wss" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	netDial := opt.NetDial
	if netDial == nil {
		netDial = (&net.Dialer{}).DialContext
	}
	nc, err := netDial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake is bounded by ctx: its deadline, and its end, which
	// sets a past deadline so that a blocked read or write returns.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := handshake(nc, u, opt, offer)
	if !stop() && err == nil { // ctx ended just as the handshake did
		err = fmt.Errorf("wsclient: handshake with %s: %w", u.Host, context.Cause(ctx))
	}
	if err != nil {
		_ = nc.Close()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// handshake upgrades nc (TLS first for wss).
func handshake(nc net.Conn, u *url.URL, opt Options, offer offerParams) (*Conn, error) {
	if u.Scheme == "wss" {
		cfg := opt.TLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("wsclient: tls: %w", err)
		}
		nc = tc
	}
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	var req strings.Builder
	req.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n")
	if opt.Extensions != "" {
		req.WriteString("Sec-WebSocket-Extensions: " + opt.Extensions + "\r\n")
	}
	for k, vs := range opt.Header {
		for _, v := range vs {
			req.WriteString(k + ": " + headerValueCleaner.Replace(v) + "\r\n")
		}
	}
	req.WriteString("\r\n")
	if _, err := nc.Write([]byte(req.String())); err != nil {
		return nil, fmt.Errorf("wsclient: writing the upgrade: %w", err)
	}
	size := opt.ReadBufferSize
	if size <= 0 {
		size = DefaultReadBufferSize
	}
	// The same reader goes on to read frames: whatever the server sent
	// right after its 101 is already buffered in it.
	br := bufio.NewReaderSize(nc, size)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, fmt.Errorf("wsclient: reading the upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = resp.Body.Close()
		return nil, &HandshakeError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade") {
		return nil, fmt.Errorf("%w: no Upgrade: websocket and Connection: Upgrade", ErrBadHandshake)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrBadHandshake)
	}
	answer := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	deflate, err := parseAnswer(answer, offer)
	if err != nil {
		return nil, err
	}
	maxBytes := opt.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	return newConn(nc, br, answer, deflate, maxBytes), nil
}

// headerValueCleaner drops line breaks from header values, which would
// otherwise end the header early.
var headerValueCleaner = strings.NewReplacer("\r", "", "\n", "")

// acceptKey is the Sec-WebSocket-Accept a server must answer to key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
