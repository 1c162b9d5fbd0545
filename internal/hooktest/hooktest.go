// Package hooktest is a real HTTP backend for testing duplex's hooks: an
// httptest server that records every call (path, request id, signature
// check, body) and answers each path as the test says.
package hooktest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the three hooks on a Backend.
const (
	ConnectPath   = "/connect"
	SubscribePath = "/subscribe"
	PublishPath   = "/publish"
)

// Call is one request the backend received.
type Call struct {
	Path      string
	RequestID string // the X-Request-Id header
	// Signed says the X-Duplex-Signature header was there; SignatureOK
	// that it is the HMAC-SHA256 of Body under the backend's secret.
	Signed, SignatureOK bool
	Body                []byte
}

// Field decodes the body's top-level field name into out, failing t.
func (c Call) Field(t testing.TB, name string, out any) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatalf("hook body %s: %v", c.Body, err)
	}
	raw, ok := m[name]
	if !ok {
		t.Fatalf("hook body %s has no %q", c.Body, name)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("hook body field %q = %s: %v", name, raw, err)
	}
}

// Decode decodes the body into out, for an answer that depends on it.
func (c Call) Decode(out any) error { return json.Unmarshal(c.Body, out) }

// Answer is how the backend answers one call: Status (0: 200) and Body,
// after Delay (cut short when the caller gives up). With neither Status
// nor Body it allows: 200 {"result":{}}.
type Answer struct {
	Status int
	Body   string
	Delay  time.Duration
}

// Backend is the test backend. Its methods are safe for concurrent use.
type Backend struct {
	srv    *httptest.Server
	secret []byte

	mu      sync.Mutex
	calls   []Call
	answers map[string]func(Call) Answer
	changed chan struct{} // closed and replaced at every call
}

// Start runs a backend that checks signatures against secret (may be
// nil) and answers every path {"result":{}} until told otherwise. It
// stops when the test ends.
func Start(t testing.TB, secret []byte) *Backend {
	t.Helper()
	b := &Backend{secret: secret, answers: map[string]func(Call) Answer{}, changed: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

// URL is the address of path on the backend.
func (b *Backend) URL(path string) string { return b.srv.URL + path }

// Answer makes path answer every call with f's answer.
func (b *Backend) Answer(path string, f func(Call) Answer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answers[path] = f
}

// AnswerJSON makes path answer every call 200 with body.
func (b *Backend) AnswerJSON(path, body string) {
	b.Answer(path, func(Call) Answer { return Answer{Body: body} })
}

// Calls returns the calls to path so far, in order.
func (b *Backend) Calls(path string) []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Call
	for _, c := range b.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// Last returns the latest call to path, failing t when there is none.
func (b *Backend) Last(t testing.TB, path string) Call {
	t.Helper()
	calls := b.Calls(path)
	if len(calls) == 0 {
		t.Fatalf("the backend got no call to %s", path)
	}
	return calls[len(calls)-1]
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sig := r.Header.Get("X-Duplex-Signature")
	call := Call{Path: r.URL.Path, RequestID: r.Header.Get("X-Request-Id"), Signed: sig != "", Body: body}
	if got, ok := strings.CutPrefix(sig, "sha256="); ok && b.secret != nil {
		call.SignatureOK = hmac.Equal([]byte(got), []byte(Sign(b.secret, body)))
	}
	b.mu.Lock()
	b.calls = append(b.calls, call)
	close(b.changed)
	b.changed = make(chan struct{})
	answer := b.answers[r.URL.Path]
	b.mu.Unlock()

	var a Answer
	if answer != nil {
		a = answer(call)
	}
	if a.Status == 0 && a.Body == "" {
		a.Body = `{"result":{}}`
	}
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if a.Status == 0 {
		a.Status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
}

// Sign is the hex HMAC-SHA256 of body under secret, as a backend
// computes it to check X-Duplex-Signature (after its "sha256=").
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// DownURL is the URL of an address nothing listens on: a hook there is down.
func DownURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/down"
}

// WaitCalls waits until path has had n calls, failing t after timeout.
func (b *Backend) WaitCalls(t testing.TB, path string, n int, timeout time.Duration) []Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		b.mu.Lock()
		ch := b.changed
		b.mu.Unlock()
		if calls := b.Calls(path); len(calls) >= n {
			return calls
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("the backend got %d calls to %s, want %d", len(b.Calls(path)), path, n)
		}
	}
}
