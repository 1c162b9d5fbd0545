package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
)

func TestParseSoakFlagsLoopbackOnly(t *testing.T) {
	base := []string{"-api-key", "k", "-nodes", "http://127.0.0.1:9072,http://127.0.0.2:9073"}
	cfg, err := parseSoakFlags(append([]string{"-url", "ws://127.0.0.1:9071"}, base...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.wsBase != "ws://127.0.0.1:9071" || cfg.httpBase != "http://127.0.0.1:9071" || len(cfg.nodeHTTP) != 2 {
		t.Errorf("bases: %q %q %v", cfg.wsBase, cfg.httpBase, cfg.nodeHTTP)
	}
	if len(cfg.SlowBPS) != 2 {
		t.Errorf("default slow readers: %v", cfg.SlowBPS)
	}
	for _, bad := range [][]string{
		append([]string{"-url", "ws://10.0.0.1:9071"}, base...),
		append([]string{"-url", "ws://localhost:9071"}, base...), // a name could resolve anywhere
		{"-url", "ws://127.0.0.1:9071", "-api-key", "k", "-nodes", "http://192.168.1.2:9072"},
		{"-url", "ws://127.0.0.1:9071", "-nodes", "http://127.0.0.1:9072", "-api-key", ""},
		append([]string{"-url", "ws://127.0.0.1:9071", "-slow-bps", "10"}, base...),
	} {
		if _, err := parseSoakFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestSoakErrorKinds(t *testing.T) {
	if k := readKind(&websocket.CloseError{Code: 1013}); k != "close 1013" {
		t.Errorf("close: %q", k)
	}
	if k := readKind(io.ErrUnexpectedEOF); k != "eof" {
		t.Errorf("eof: %q", k)
	}
	if k := dialKind(errors.Join(&httpStatusError{502})); k != "dial HTTP 502" {
		t.Errorf("dial: %q", k)
	}
	m := soakMsg{ID: 3}
	m.Error = &struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"unavailable", "publish failed"}
	if k := replyKind(m, nil); k != "reply unavailable" {
		t.Errorf("reply: %q", k)
	}
	if k := replyKind(soakMsg{}, errNoReply); k != "no reply" {
		t.Errorf("no reply: %q", k)
	}
	e := newSoakErrors()
	e.add("a", errors.New("first"))
	e.add("a", errors.New("second"))
	n, s := e.snapshot()
	if n["a"] != 2 || !strings.Contains(s["a"], "first") {
		t.Errorf("tally %v %v", n, s)
	}
}

// The checker's accounting: an acknowledged publication seen once is
// fine, one never seen is missing, one seen at two offsets was stored
// twice, one offset seen twice is a redelivery, and an API offset that
// carried another publication is a mismatch.
func TestCheckerAccounting(t *testing.T) {
	c := newChecker(&soakConfig{}, "", 6, newSoakErrors())
	c.handle(1, []byte(`{"sid":1}`))
	c.handle(2, []byte(`{"sid":2}`))
	c.handle(2, []byte(`{"sid":2}`)) // same offset again
	c.handle(3, []byte(`{"sid":3}`))
	c.handle(4, []byte(`{"sid":3}`)) // stored twice
	c.handle(6, []byte(`{"sid":5}`)) // offset 5 skipped; 5 was never acknowledged
	acked := []bool{false, true, true, true, true, false, true}
	offsets := []uint64{0, 1, 2, 3, 2, 0, 7} // id 4 was told offset 2, which holds id 2
	if n := c.missing(acked); n != 2 {
		t.Errorf("missing %d, want 2 (ids 4 and 6)", n)
	}
	r := c.result(acked, offsets)
	want := CheckerResult{Expected: 5, Received: 3, Missing: 2, TwoOffsets: 1, Redelivered: 1, OffsetMismatch: 1, Unacked: 1, Gaps: 1}
	if r != want {
		t.Errorf("result %+v\nwant   %+v", r, want)
	}
	if id := c.idAt(2); id != 2 {
		t.Errorf("idAt(2) = %d", id)
	}
}

func TestRetriable(t *testing.T) {
	for status, want := range map[int]bool{0: true, 200: false, 400: false, 401: false, 502: true, 503: true, 504: true} {
		if retriable(status) != want {
			t.Errorf("retriable(%d) = %v", status, !want)
		}
	}
}
