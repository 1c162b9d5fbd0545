package main

// The parts of the soak mode (soak.go): the checking subscribers, the API
// publisher, chat, live, echo and churn. Each part runs until its context
// ends, and every loop also has a count bound, so a part that stops
// sleeping (a server answering errors at once) still ends.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

// soakMsg is any message the server sends on /realtime, decoded.
type soakMsg struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
	Join    json.RawMessage `json:"join"`
	Leave   json.RawMessage `json:"leave"`
	Missed  *uint64         `json:"missed"`
}

func (m *soakMsg) isPublication() bool { return m.ID == 0 && m.Data != nil && m.Channel != "" }

// ---------------------------------------------------------------------------
// Error kinds

// httpStatusError is a refused WebSocket handshake.
type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return "handshake refused: HTTP " + strconv.Itoa(e.status) }

// soakDial opens a WebSocket; a refused handshake is an *httpStatusError.
func soakDial(ctx context.Context, d *websocket.Dialer, u string, timeout time.Duration) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%w (%v)", &httpStatusError{resp.StatusCode}, err)
		}
		return nil, err
	}
	c.SetReadLimit(readLimitBytes)
	return c, nil
}

// netKind names a transport error: timeout, refused, reset, eof or io.
func netKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "io"
}

// dialKind: "dial HTTP 502", "dial refused", "dial timeout", ...
func dialKind(err error) string {
	var he *httpStatusError
	if errors.As(err, &he) {
		return "dial HTTP " + strconv.Itoa(he.status)
	}
	return "dial " + netKind(err)
}

// readKind: "close 1013" for a close frame from the server, else the
// transport error ("eof" is a connection closed without a close frame:
// what a browser reports as 1006).
func readKind(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return "close " + strconv.Itoa(ce.Code)
	}
	return netKind(err)
}

// ---------------------------------------------------------------------------
// Sessions on /realtime

// rtSession is one /realtime connection with a reader goroutine: replies go
// to whoever waits for them, everything else to onPush.
type rtSession struct {
	conn    *websocket.Conn
	timeout time.Duration
	mu      sync.Mutex
	nextID  int
	pending map[int]chan soakMsg
	closing atomic.Bool
	done    chan struct{}
	readErr error // set before done closes
}

func newRTSession(c *websocket.Conn, timeout time.Duration, onPush func(*soakMsg)) *rtSession {
	s := &rtSession{conn: c, timeout: timeout, pending: map[int]chan soakMsg{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var buf []byte
		var err error
		for {
			if buf, err = readFrame(c, buf[:0]); err != nil {
				s.readErr = err
				return
			}
			for line := range splitLines(buf) {
				var m soakMsg
				if json.Unmarshal(line, &m) != nil {
					continue
				}
				if m.ID != 0 {
					s.mu.Lock()
					ch := s.pending[m.ID]
					delete(s.pending, m.ID)
					s.mu.Unlock()
					if ch != nil {
						ch <- m // buffered
					}
					continue
				}
				onPush(&m)
			}
		}
	}()
	return s
}

// errNoReply: the command's reply did not come within the timeout (or the
// connection ended first).
var errNoReply = errors.New("no reply")

// call sends {"id":N,"op":op,<fields>} and waits for its reply.
func (s *rtSession) call(op, fields string) (soakMsg, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	ch := make(chan soakMsg, 1)
	s.pending[id] = ch
	s.mu.Unlock()
	cmd := `{"id":` + strconv.Itoa(id) + `,"op":"` + op + `"` + fields + `}`
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return soakMsg{}, err
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case m := <-ch:
		return m, nil
	case <-t.C:
		return soakMsg{}, errNoReply
	case <-s.done:
		return soakMsg{}, fmt.Errorf("%w: %v", errNoReply, s.readErr)
	}
}

// close ends the session: a close frame if graceful, then the socket; it
// waits for the reader.
func (s *rtSession) close(graceful bool) {
	s.closing.Store(true)
	if graceful {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		select {
		case <-s.done:
		case <-time.After(time.Second):
		}
	}
	_ = s.conn.Close()
	<-s.done
}

// failed reports how the session's connection ended, if the soak did not
// end it: "" while it is open or when the soak closed it.
func (s *rtSession) failed() (string, error) {
	select {
	case <-s.done:
	default:
		return "", nil
	}
	if s.closing.Load() {
		return "", nil
	}
	return readKind(s.readErr), s.readErr
}

// replyKind names a failed call: "no reply", "write <kind>" or the error
// code of the reply ("" when the reply is a result).
func replyKind(m soakMsg, err error) string {
	switch {
	case errors.Is(err, errNoReply):
		return "no reply"
	case err != nil:
		return "write " + netKind(err)
	case m.Error != nil:
		return "reply " + m.Error.Code
	}
	return ""
}

// do calls op and tells whether it got a result; a failure is counted as
// "<what>: <kind>".
func (s *rtSession) do(errs *soakErrors, what, op, fields string) bool {
	msg, err := s.call(op, fields)
	if k := replyKind(msg, err); k != "" {
		errs.add(what+": "+k, callErr(msg, err))
		return false
	}
	return true
}

// callErr is the error to keep as the sample of a failed call: the
// transport error, or the reply's error message.
func callErr(m soakMsg, err error) error {
	if err == nil && m.Error != nil {
		return errors.New(m.Error.Code + ": " + m.Error.Message)
	}
	return err
}

// pause sleeps d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) { sleepUntil(ctx, time.Now().Add(d)) }

// loopBound is the most iterations a loop that waits at least every per
// between iterations can need in the run (doubled, plus slack).
func loopBound(cfg *soakConfig, per time.Duration) int {
	return int(2*cfg.Duration/per) + 100
}

// ---------------------------------------------------------------------------
// Checkers: one subscriber per node on push:soak, reading everything

// CheckerResult is what one checking subscriber saw of the acknowledged
// publications.
type CheckerResult struct {
	Expected       uint64 `json:"expected"` // acknowledged publications
	Received       uint64 `json:"received"` // of those, seen at least once
	Missing        uint64 `json:"missing"`
	TwoOffsets     uint64 `json:"two_offsets"`     // seen at two or more offsets: stored twice
	Redelivered    uint64 `json:"redelivered"`     // one offset delivered twice
	OffsetMismatch uint64 `json:"offset_mismatch"` // the API's offset carried another publication here
	Unacked        uint64 `json:"unacknowledged"`  // seen, but the API never answered 200
	Gaps           uint64 `json:"offset_gaps"`     // offsets skipped in the live stream (then recovered or not)
	Reconnects     int    `json:"reconnects"`
	Unrecovered    int    `json:"unrecovered"` // reconnects answered recovered:false
}

type checker struct {
	cfg  *soakConfig
	url  string
	errs *soakErrors

	mu          sync.Mutex
	sess        *rtSession
	count       []uint8           // by publication id: offsets that carried it
	byOffset    map[uint64]uint64 // offset -> publication id
	last        uint64
	epoch       string
	redelivered uint64
	gaps        uint64
	reconnects  int
	unrecovered int
}

func newChecker(cfg *soakConfig, url string, maxID uint64, errs *soakErrors) *checker {
	return &checker{cfg: cfg, url: url, errs: errs, count: make([]uint8, maxID+1), byOffset: map[uint64]uint64{}}
}

var sidKey = []byte(`"sid":`)

// handle files one publication of push:soak (live or recovered).
func (c *checker) handle(off uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.byOffset[off]; seen {
		c.redelivered++
		return
	}
	id, _ := findUint(data, sidKey)
	c.byOffset[off] = id
	if id > 0 && id < uint64(len(c.count)) && c.count[id] < 255 {
		c.count[id]++
	}
	if c.last > 0 && off > c.last+1 {
		c.gaps += off - c.last - 1
	}
	c.last = max(c.last, off)
}

// subscribe (re)connects and subscribes, recovering from the last offset
// seen after the first time.
func (c *checker) subscribe(ctx context.Context) error {
	conn, err := soakDial(ctx, newDialer(c.cfg.Timeout), c.url, c.cfg.Timeout)
	if err != nil {
		return err
	}
	s := newRTSession(conn, c.cfg.Timeout, func(m *soakMsg) {
		if m.isPublication() && m.Channel == "push:soak" {
			c.handle(m.Offset, m.Data)
		}
	})
	c.mu.Lock()
	fields := `,"channel":"push:soak"`
	recovering := c.epoch != ""
	if recovering {
		fields += `,"recover":{"offset":` + strconv.FormatUint(c.last, 10) + `,"epoch":"` + c.epoch + `"}`
	}
	c.mu.Unlock()
	m, err := s.call("subscribe", fields)
	if k := replyKind(m, err); k != "" {
		s.close(false)
		if err == nil {
			err = errors.New(m.Error.Code + ": " + m.Error.Message)
		}
		return fmt.Errorf("subscribe: %s: %w", k, err)
	}
	var r struct {
		Offset       uint64 `json:"offset"`
		Epoch        string `json:"epoch"`
		Recovered    *bool  `json:"recovered"`
		Publications []struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		} `json:"publications"`
	}
	_ = json.Unmarshal(m.Result, &r)
	for _, p := range r.Publications {
		c.handle(p.Offset, p.Data)
	}
	c.mu.Lock()
	if recovering && (r.Recovered == nil || !*r.Recovered) {
		c.unrecovered++
	}
	if c.epoch == "" {
		c.epoch = r.Epoch
		c.last = max(c.last, r.Offset)
	}
	c.sess = s
	c.mu.Unlock()
	return nil
}

// run keeps the checker subscribed until ctx ends.
func (c *checker) run(ctx context.Context) {
	for range loopBound(c.cfg, time.Second) {
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
		}
		if k, err := s.failed(); k != "" {
			c.errs.add("checker: "+k, err)
		}
		for range 600 { // reconnect, once a second, for at most 10 minutes
			pause(ctx, time.Second)
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
			err := c.subscribe(ctx)
			if err == nil {
				break
			}
			c.errs.add("checker: re"+dialKind(err), err)
		}
	}
}

func (c *checker) close() {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.close(true)
	}
}

// idAt is the publication id the checker got at offset off (0: none).
func (c *checker) idAt(off uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byOffset[off]
}

// missing counts the acknowledged publications not seen yet.
func (c *checker) missing(acked []bool) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for id, ok := range acked {
		if ok && c.count[id] == 0 {
			n++
		}
	}
	return n
}

func (c *checker) result(acked []bool, offsets []uint64) CheckerResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := CheckerResult{Redelivered: c.redelivered, Gaps: c.gaps, Reconnects: c.reconnects, Unrecovered: c.unrecovered}
	for id, ok := range acked {
		n := c.count[id]
		if !ok {
			if n > 0 && id > 0 {
				r.Unacked++
			}
			continue
		}
		r.Expected++
		switch {
		case n == 0:
			r.Missing++
		case n > 1:
			r.TwoOffsets++
		}
		if n > 0 {
			r.Received++
		}
		if got, ok := c.byOffset[offsets[id]]; ok && got != uint64(id) {
			r.OffsetMismatch++
		}
	}
	return r
}

// ---------------------------------------------------------------------------
// The API publisher: checked publications, retried with the same key

// APIResult counts the checked publications.
type APIResult struct {
	Attempted       uint64  `json:"attempted"`
	Acked           uint64  `json:"acknowledged"`
	AckedAfterRetry uint64  `json:"acknowledged_after_retry"`
	Replayed        uint64  `json:"replayed"` // 200 with "replayed":true: an earlier try had been stored
	GaveUp          uint64  `json:"gave_up"`  // no 200 within the retry budget
	Retries         uint64  `json:"retries"`
	LatencyUS       Latency `json:"latency_us"` // first try to 200
}

type apiPublisher struct {
	cfg    *soakConfig
	errs   *soakErrors
	client *http.Client
	runID  string
	maxID  uint64
	// acked[id], offsets[id]: written by the worker that owns id, read
	// after every worker stopped.
	acked   []bool
	offsets []uint64

	mu                                              sync.Mutex
	hist                                            Histogram
	attempted, ackedN, afterRetry, replayed, gaveUp uint64
	retries                                         uint64
}

func newAPIPublisher(cfg *soakConfig, maxID uint64, errs *soakErrors) *apiPublisher {
	return &apiPublisher{
		cfg: cfg, errs: errs, maxID: maxID,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			Proxy: nil, MaxIdleConnsPerHost: cfg.APIWorkers + 2, DisableCompression: true,
		}},
		runID:   strconv.FormatInt(time.Now().UnixNano(), 36),
		acked:   make([]bool, maxID+1),
		offsets: make([]uint64, maxID+1),
	}
}

// postAPI posts one publication; it returns the HTTP status (0 for a
// transport error) and the decoded 200 answer.
func postAPI(ctx context.Context, client *http.Client, cfg *soakConfig, key string, body []byte) (int, apiAnswer, error) {
	var a apiAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.httpBase+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return 0, a, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, a, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, a, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, a, fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(rb))
	}
	if err := json.Unmarshal(rb, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("bad 200 answer %s: %w", clip(rb), err)
	}
	return resp.StatusCode, a, nil
}

type apiAnswer struct {
	Offset   uint64 `json:"offset"`
	Epoch    string `json:"epoch"`
	Replayed bool   `json:"replayed"`
}

// apiErrKind names a failed API call: "HTTP 503", or the transport error.
func apiErrKind(status int, err error) string {
	if status == 0 {
		return netKind(err)
	}
	return "HTTP " + strconv.Itoa(status)
}

// retriable: the outcome is unknown or the publication was not stored, so
// the same key may be tried again (docs/protocol.md, idempotency keys).
func retriable(status int) bool {
	return status == 0 || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// run paces publication ids 1, 2, … at APIRate over the load (loadCtx) to
// the workers. A publication that has started is retried until 200 or the
// retry budget, even past the end of the load, unless the run is
// interrupted (hard).
func (p *apiPublisher) run(loadCtx, hard context.Context) {
	ids := make(chan uint64)
	var wg sync.WaitGroup
	for range p.cfg.APIWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				p.publish(hard, id)
			}
		}()
	}
	start := time.Now()
	iv := time.Duration(float64(time.Second) / p.cfg.APIRate)
	for id := uint64(1); id <= p.maxID; id++ {
		sleepUntil(loadCtx, start.Add(time.Duration(id-1)*iv))
		if loadCtx.Err() != nil {
			break
		}
		select {
		case ids <- id:
		case <-loadCtx.Done():
		}
	}
	close(ids)
	wg.Wait()
}

func (p *apiPublisher) publish(ctx context.Context, id uint64) {
	key := "soak-" + p.runID + "-" + strconv.FormatUint(id, 10)
	body := []byte(`{"channel":"push:soak","data":{"sid":` + strconv.FormatUint(id, 10) + `,"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}}`)
	t0 := time.Now()
	p.mu.Lock()
	p.attempted++
	p.mu.Unlock()
	backoff := 200 * time.Millisecond
	for attempt := 0; attempt < 1000; attempt++ {
		status, a, err := postAPI(ctx, p.client, p.cfg, key, body)
		if err == nil {
			p.acked[id], p.offsets[id] = true, a.Offset
			p.mu.Lock()
			p.ackedN++
			p.hist.Record(time.Since(t0))
			if attempt > 0 {
				p.afterRetry++
			}
			if a.Replayed {
				p.replayed++
			}
			p.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return // interrupted: neither acknowledged nor given up
		}
		p.errs.add("api publish: "+apiErrKind(status, err), err)
		if !retriable(status) || time.Since(t0) > retryBudget {
			p.mu.Lock()
			p.gaveUp++
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.retries++
		p.mu.Unlock()
		pause(ctx, backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *apiPublisher) result() APIResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return APIResult{
		Attempted: p.attempted, Acked: p.ackedN, AckedAfterRetry: p.afterRetry, Replayed: p.replayed,
		GaveUp: p.gaveUp, Retries: p.retries, LatencyUS: latencySummary(&p.hist),
	}
}

// ---------------------------------------------------------------------------
// Chat: members join rooms, talk, leave, disconnect and come back

// ChatResult counts the chat traffic.
type ChatResult struct {
	Sessions     uint64 `json:"sessions"`
	Subscribes   uint64 `json:"subscribes"`   // answered with a result
	Unsubscribes uint64 `json:"unsubscribes"` // answered with a result
	Sent         uint64 `json:"sent"`
	Acked        uint64 `json:"acknowledged"`
	Received     uint64 `json:"received"` // publications pushed to members
	JoinEvents   uint64 `json:"join_events"`
	LeaveEvents  uint64 `json:"leave_events"`
}

type chatLoad struct {
	cfg  *soakConfig
	errs *soakErrors
	sessions, subscribes, unsubscribes, sent, acked,
	received, joins, leaves atomic.Uint64
}

func (l *chatLoad) run(ctx context.Context) {
	var wg sync.WaitGroup
	for m := range l.cfg.ChatMembers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(m), 1))
			for range loopBound(l.cfg, 5*time.Second) {
				if ctx.Err() != nil {
					return
				}
				l.session(ctx, m, rng)
				pause(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// session: connect, join one or two rooms, send a message every 1-3 s for
// 5-30 s, then leave (unsubscribe) and close, or just disconnect.
func (l *chatLoad) session(ctx context.Context, m int, rng *rand.Rand) {
	c, err := soakDial(ctx, newDialer(l.cfg.Timeout), l.cfg.wsBase+"/realtime?name=soak-"+strconv.Itoa(m), l.cfg.Timeout)
	if err != nil {
		if ctx.Err() == nil {
			l.errs.add("chat: "+dialKind(err), err)
		}
		return
	}
	l.sessions.Add(1)
	s := newRTSession(c, l.cfg.Timeout, func(msg *soakMsg) {
		switch {
		case msg.Join != nil:
			l.joins.Add(1)
		case msg.Leave != nil:
			l.leaves.Add(1)
		case msg.isPublication():
			l.received.Add(1)
		}
	})
	graceful := rng.IntN(2) == 0
	defer func() {
		if k, err := s.failed(); k != "" {
			l.errs.add("chat: "+k, err)
		}
		s.close(graceful)
	}()
	rooms := []string{"chat:soak-" + strconv.Itoa(rng.IntN(l.cfg.ChatRooms))}
	if rng.IntN(2) == 0 {
		if r := "chat:soak-" + strconv.Itoa(rng.IntN(l.cfg.ChatRooms)); r != rooms[0] {
			rooms = append(rooms, r)
		}
	}
	var joined []string
	for _, r := range rooms {
		if !s.do(l.errs, "chat subscribe", "subscribe", `,"channel":"`+r+`"`) {
			continue
		}
		l.subscribes.Add(1)
		joined = append(joined, r)
	}
	if len(joined) == 0 {
		return
	}
	end := time.Now().Add(time.Duration(5+rng.IntN(26)) * time.Second)
	for n := 0; n < 100 && time.Now().Before(end) && ctx.Err() == nil; n++ {
		pause(ctx, time.Duration(1000+rng.IntN(2000))*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
		if k, _ := s.failed(); k != "" {
			return
		}
		l.sent.Add(1)
		if !s.do(l.errs, "chat publish", "publish", `,"channel":"`+joined[rng.IntN(len(joined))]+`","data":{"text":"你好 `+strconv.Itoa(n)+`"}`) {
			continue
		}
		l.acked.Add(1)
	}
	if graceful {
		for _, r := range joined {
			if !s.do(l.errs, "chat unsubscribe", "unsubscribe", `,"channel":"`+r+`"`) {
				continue
			}
			l.unsubscribes.Add(1)
		}
	}
}

func (l *chatLoad) result() ChatResult {
	return ChatResult{
		Sessions: l.sessions.Load(), Subscribes: l.subscribes.Load(), Unsubscribes: l.unsubscribes.Load(),
		Sent: l.sent.Load(), Acked: l.acked.Load(), Received: l.received.Load(),
		JoinEvents: l.joins.Load(), LeaveEvents: l.leaves.Load(),
	}
}

// ---------------------------------------------------------------------------
// Live: a fast publisher (API), a reader that keeps up, a slow reader

// LiveReader is what one live:soak reader saw. Offsets of a channel grow by
// one per publication, so a gap is what was not delivered; for the slow
// reader, drop-oldest should account for every gap with {"missed":n}.
type LiveReader struct {
	BPS      int    `json:"bytes_per_s,omitempty"` // slow readers: the read rate
	Sessions uint64 `json:"sessions"`
	Received uint64 `json:"received"`
	GapSum   uint64 `json:"gap_sum"`   // offsets skipped, within a session
	Missed   uint64 `json:"missed"`    // sum of {"missed":n} notices
	Backward uint64 `json:"backwards"` // an offset not above the previous one
}

// LiveResult counts the live traffic.
type LiveResult struct {
	Published     uint64       `json:"published"`
	PublishErrors uint64       `json:"publish_errors"`
	Fast          LiveReader   `json:"fast"`
	Slow          []LiveReader `json:"slow"`
}

type liveReader struct {
	sessions, received, gapSum, missed, backward atomic.Uint64
}

func (r *liveReader) result() LiveReader {
	return LiveReader{Sessions: r.sessions.Load(), Received: r.received.Load(), GapSum: r.gapSum.Load(),
		Missed: r.missed.Load(), Backward: r.backward.Load()}
}

type liveLoad struct {
	cfg                  *soakConfig
	errs                 *soakErrors
	published, pubErrors atomic.Uint64
	fast                 liveReader
	slow                 []liveReader
}

func (l *liveLoad) run(ctx context.Context) {
	var wg sync.WaitGroup
	l.slow = make([]liveReader, len(l.cfg.SlowBPS))
	wg.Add(2 + len(l.slow))
	go func() { defer wg.Done(); l.read(ctx, "live fast", &l.fast, 0) }()
	for i, bps := range l.cfg.SlowBPS {
		go func() { defer wg.Done(); l.read(ctx, "live slow "+strconv.Itoa(bps), &l.slow[i], bps) }()
	}
	go func() { defer wg.Done(); l.publish(ctx) }()
	wg.Wait()
}

func (l *liveLoad) publish(ctx context.Context) {
	if l.cfg.LiveRate <= 0 {
		return
	}
	client := &http.Client{Timeout: l.cfg.Timeout, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	pad := strings.Repeat("x", l.cfg.LiveSize-16)
	iv := time.Duration(float64(time.Second) / l.cfg.LiveRate)
	start := time.Now()
	for i := range uint64(l.cfg.LiveRate*l.cfg.Duration.Seconds()) + 1 {
		sleepUntil(ctx, start.Add(time.Duration(i)*iv))
		if ctx.Err() != nil {
			return
		}
		body := []byte(`{"channel":"live:soak","data":{"lv":` + strconv.FormatUint(i, 10) + `,"p":"` + pad + `"}}`)
		status, _, err := postAPI(ctx, client, l.cfg, "live-"+strconv.FormatInt(start.UnixNano(), 36)+"-"+strconv.FormatUint(i, 10), body)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.pubErrors.Add(1)
			l.errs.add("live publish: "+apiErrKind(status, err), err)
			continue
		}
		l.published.Add(1)
	}
}

// slowConn reads at most bps bytes a second, in small pieces.
type slowConn struct {
	net.Conn
	bps int
}

func (c *slowConn) Read(p []byte) (int, error) {
	if len(p) > 1024 {
		p = p[:1024]
	}
	n, err := c.Conn.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(c.bps))
	return n, err
}

// read keeps one reader subscribed to live:soak until ctx ends. A slow
// one (bps > 0) has a 64 KiB receive buffer (smaller ones cap loopback
// TCP far below bps: delayed ACKs) and reads bps bytes a second,
// so the server's queue for it fills and drop-oldest must keep it
// connected; it sends a ping command every 10 s so that the server sees
// it alive.
func (l *liveLoad) read(ctx context.Context, name string, r *liveReader, bps int) {
	slow := bps > 0
	d := newDialer(l.cfg.Timeout)
	if slow {
		nd := &net.Dialer{Timeout: l.cfg.Timeout}
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(64 << 10)
			}
			return &slowConn{Conn: c, bps: bps}, nil
		}
	}
	for range loopBound(l.cfg, time.Second) {
		if ctx.Err() != nil {
			return
		}
		c, err := soakDial(ctx, d, l.cfg.wsBase+"/realtime", l.cfg.Timeout)
		if err != nil {
			if ctx.Err() == nil {
				l.errs.add(name+": "+dialKind(err), err)
			}
			pause(ctx, time.Second)
			continue
		}
		r.sessions.Add(1)
		var last uint64
		s := newRTSession(c, l.cfg.Timeout, func(m *soakMsg) {
			switch {
			case m.Missed != nil:
				r.missed.Add(*m.Missed)
			case m.isPublication():
				r.received.Add(1)
				switch {
				case last == 0:
				case m.Offset > last+1:
					r.gapSum.Add(m.Offset - last - 1)
				case m.Offset <= last:
					r.backward.Add(1)
				}
				last = max(last, m.Offset)
			}
		})
		// A slow reader's replies wait behind its queue: give it longer.
		if slow {
			s.timeout = 10 * l.cfg.Timeout
		}
		if !s.do(l.errs, name+" subscribe", "subscribe", `,"channel":"live:soak"`) {
			s.close(false)
			pause(ctx, time.Second)
			continue
		}
		for range loopBound(l.cfg, 10*time.Second) {
			select {
			case <-ctx.Done():
			case <-s.done:
			case <-time.After(10 * time.Second):
				if slow {
					_ = s.conn.SetWriteDeadline(time.Now().Add(l.cfg.Timeout))
					_ = s.conn.WriteMessage(websocket.TextMessage, []byte(`{"id":1000000,"op":"ping"}`))
				}
				continue
			}
			break
		}
		if k, err := s.failed(); k != "" {
			l.errs.add(name+": "+k, err)
		}
		s.close(false)
	}
}

func (l *liveLoad) result() LiveResult {
	r := LiveResult{Published: l.published.Load(), PublishErrors: l.pubErrors.Load(), Fast: l.fast.result()}
	for i := range l.slow {
		sr := l.slow[i].result()
		sr.BPS = l.cfg.SlowBPS[i]
		r.Slow = append(r.Slow, sr)
	}
	return r
}

// ---------------------------------------------------------------------------
// Echo on /ws

// EchoResult counts the echo traffic.
type EchoResult struct {
	Sessions  uint64  `json:"sessions"`
	OK        uint64  `json:"ok"`
	Wrong     uint64  `json:"wrong"`
	LatencyUS Latency `json:"latency_us"`
}

type echoLoad struct {
	cfg                 *soakConfig
	errs                *soakErrors
	sessions, ok, wrong atomic.Uint64
	hist                *shardedHistogram
}

func (l *echoLoad) run(ctx context.Context) {
	l.hist = newShardedHistogram(max(l.cfg.EchoConns, 1))
	var wg sync.WaitGroup
	for w := range l.cfg.EchoConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq uint64
			for range loopBound(l.cfg, time.Second) {
				if ctx.Err() != nil {
					return
				}
				l.session(ctx, w, &seq)
				pause(ctx, 500*time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// session sends a message every 50 ms and checks each reply, until an
// error or the end.
func (l *echoLoad) session(ctx context.Context, w int, seq *uint64) {
	c, err := soakDial(ctx, newDialer(l.cfg.Timeout), l.cfg.wsBase+"/ws", l.cfg.Timeout)
	if err != nil {
		if ctx.Err() == nil {
			l.errs.add("echo: "+dialKind(err), err)
		}
		return
	}
	l.sessions.Add(1)
	defer closeGracefully(c)
	var msg, want []byte
	for range loopBound(l.cfg, 50*time.Millisecond) {
		if ctx.Err() != nil {
			return
		}
		*seq++
		msg = appendPayload(msg[:0], w, *seq, 16)
		t0 := time.Now()
		_ = c.SetWriteDeadline(t0.Add(l.cfg.Timeout))
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			l.errs.add("echo: write "+netKind(err), err)
			return
		}
		_ = c.SetReadDeadline(t0.Add(l.cfg.Timeout))
		_, reply, err := c.ReadMessage()
		if err != nil {
			l.errs.add("echo: "+readKind(err), err)
			return
		}
		if want, err = checkReply(expectTutorial, msg, reply, want); err != nil {
			l.wrong.Add(1)
			l.errs.add("echo: wrong reply", err)
		} else {
			l.ok.Add(1)
			l.hist.Record(w, time.Since(t0))
		}
		pause(ctx, 50*time.Millisecond)
	}
}

func (l *echoLoad) result() EchoResult {
	r := EchoResult{Sessions: l.sessions.Load(), OK: l.ok.Load(), Wrong: l.wrong.Load()}
	if l.hist != nil {
		r.LatencyUS = latencySummary(l.hist.Merged())
	}
	return r
}

// ---------------------------------------------------------------------------
// Churn: connections opened and closed at a steady rate

// ChurnResult counts the churn.
type ChurnResult struct {
	Opened     uint64 `json:"opened"`
	Subscribed uint64 `json:"subscribed"`
	Failed     uint64 `json:"failed"`
}

type churnLoad struct {
	cfg                        *soakConfig
	errs                       *soakErrors
	opened, subscribed, failed atomic.Uint64
}

// run opens ChurnRate connections a second, at most 16 at a time: two in
// three on /realtime (subscribe to push:soak-churn, then close with a close
// frame or by dropping the socket, alternately), one in three on /ws.
func (l *churnLoad) run(ctx context.Context) {
	if l.cfg.ChurnRate <= 0 {
		return
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	iv := time.Duration(float64(time.Second) / l.cfg.ChurnRate)
	start := time.Now()
	for i := range int(l.cfg.ChurnRate*l.cfg.Duration.Seconds()) + 1 {
		sleepUntil(ctx, start.Add(time.Duration(i)*iv))
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			l.one(ctx, i)
		}()
	}
	wg.Wait()
}

func (l *churnLoad) one(ctx context.Context, i int) {
	path := "/realtime"
	if i%3 == 2 {
		path = "/ws"
	}
	c, err := soakDial(ctx, newDialer(l.cfg.Timeout), l.cfg.wsBase+path, l.cfg.Timeout)
	if err != nil {
		if ctx.Err() == nil {
			l.failed.Add(1)
			l.errs.add("churn: "+dialKind(err), err)
		}
		return
	}
	l.opened.Add(1)
	if path == "/realtime" {
		_ = c.SetWriteDeadline(time.Now().Add(l.cfg.Timeout))
		err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"push:soak-churn"}`))
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(l.cfg.Timeout))
			_, err = awaitReply(fastConn{c}, targetDuplex, 1)
		}
		if err != nil {
			l.failed.Add(1)
			kind := readKind(err)
			if strings.Contains(err.Error(), "refused:") {
				kind = "reply error" // awaitReply: the server answered with an error
			}
			l.errs.add("churn subscribe: "+kind, err)
		} else {
			l.subscribed.Add(1)
		}
	}
	if i%2 == 0 {
		closeGracefully(c)
	} else {
		_ = c.Close() // no close frame: the server sees the socket go
	}
}

func (l *churnLoad) result() ChurnResult {
	return ChurnResult{Opened: l.opened.Load(), Subscribed: l.subscribed.Load(), Failed: l.failed.Load()}
}
