package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRequestHead is the head of a POST /api/publish with the given
// Content-Length; auth is the whole Authorization header line or "".
func rawRequestHead(addr, auth string, contentLength int) string {
	return fmt.Sprintf("POST /api/publish HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		addr, auth, contentLength)
}

// A Content-Length over the API's 64 KiB is answered 413 from the headers
// alone, with or without a key: the client has sent no body byte and
// still gets its answer, and the server then closes the connection rather
// than read what follows.
func TestAPIHugeContentLengthAnsweredBeforeTheBody(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	for _, auth := range []string{"", "Authorization: Bearer " + testAPIKey + "\r\n", "Authorization: Bearer wrong\r\n"} {
		conn, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// The bound only limits how long a failing server is waited for.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, rawRequestHead(s.addr, auth, 1_000_000))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("auth %q: no answer before the body was sent: %v", auth, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("auth %q: status %d %s, want 413", auth, resp.StatusCode, body)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("auth %q: connection still open after 413 (%v); the body would be read", auth, err)
		}
		conn.Close()
	}
}

// Many clients without a key each start a publish of a body the API would
// accept (under 64 KiB) and stall before its end, as a slow or hostile
// client does. Each is answered 401 without its body being waited for,
// and the server's heap does not grow by the bodies: an unauthenticated
// request costs a small constant, not its Content-Length.
func TestAPIUnauthenticatedBodiesAreNotBuffered(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const (
		clients  = 200
		declared = 64000 // within MaxAPIBodyBytes
		sent     = 60000 // the rest never comes
		// Generous: 8 KiB per client for sockets, buffers and goroutines
		// on both sides of the test, plus 2 MiB of noise. Buffering the
		// bodies alone would take clients*sent = 11.4 MiB.
		budget = clients*8<<10 + 2<<20
	)
	body := []byte(strings.Repeat("x", sent))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Sample the heap while the requests are in flight: what matters is
	// what the server holds while it waits, not what is left afterwards.
	// Each sample follows a collection, so garbage (of the clients here
	// too) does not count, only what is still held.
	stop := make(chan struct{})
	peak := make(chan uint64, 1)
	go func() {
		var m runtime.MemStats
		var top uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.GC()
			runtime.ReadMemStats(&m)
			top = max(top, m.HeapInuse)
			select {
			case <-stop:
				peak <- top
				return
			case <-tick.C:
			}
		}
	}()

	statuses := make([]int, clients)
	errs := make([]error, clients)
	conns := make([]net.Conn, clients)
	var wg sync.WaitGroup
	for i := range clients {
		conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = conn
		wg.Go(func() {
			// The bound only limits how long a failing server is waited for.
			_ = conn.SetDeadline(time.Now().Add(8 * time.Second))
			io.WriteString(conn, rawRequestHead(s.addr, "", declared))
			// The server may answer and close before all of it is written.
			go conn.Write(body)
			resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	close(stop)
	top := <-peak
	for _, c := range conns {
		c.Close()
	}
	refused := 0
	for i := range clients {
		if statuses[i] == 401 {
			continue
		}
		if refused++; refused <= 3 {
			t.Errorf("client %d: status %d (%v), want 401", i, statuses[i], errs[i])
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d stalled unauthenticated requests were not answered 401", refused, clients)
	}
	grew := int64(top) - int64(before.HeapInuse)
	t.Logf("heap in use grew by %.2f MiB at most", float64(grew)/(1<<20))
	if grew > budget {
		t.Errorf("heap in use grew by %.1f MiB during %d unauthenticated %d-byte requests, want at most %.1f MiB",
			float64(grew)/(1<<20), clients, declared, float64(budget)/(1<<20))
	}
}

// A body longer than a request without the key may make the server read
// gets the answer a short one gets: 401 with WWW-Authenticate, or 503
// when the API is off, not 413.
func TestAPIUnauthenticatedLongBodyGetsTheKeysAnswer(t *testing.T) {
	body := `{"channel":"push:x","data":"` + strings.Repeat("x", 10<<10) + `"}`
	on := startServer(t, rtEnv(nil))
	status, hdr, resp := apiRequest(t, on, "POST", "/api/publish", "wrong-key", body)
	wantAPIError(t, "wrong key, 10 KiB body", status, resp, 401, "")
	if hdr.Get("WWW-Authenticate") != `Bearer realm="duplex"` {
		t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
	}
	off := startServer(t, map[string]string{})
	status, _, resp = apiRequest(t, off, "POST", "/api/publish", "", body)
	if e := wantAPIError(t, "API off, 10 KiB body", status, resp, 503, ""); !strings.Contains(e.Error, "API_KEY") {
		t.Errorf("API off: %q", e.Error)
	}
}
