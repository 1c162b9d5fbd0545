package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// mintToken signs a token for user with the test servers' secret.
func mintToken(t *testing.T, user, name string) string {
	t.Helper()
	return mintWith(t, testTokenSecret, user, name, time.Hour)
}

// mintWith signs a token the way the server does, with any secret.
func mintWith(t *testing.T, secret, user, name string, ttl time.Duration) string {
	t.Helper()
	tok, err := realtime.MintToken([]byte(secret), user, name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pubCmd(channel string, n int) protocol.Command {
	return protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
}

// wantReaderGotAll checks that a subscriber that kept reading got all
// published publications of ch, in order from offset 1, and was never told
// it missed any.
func wantReaderGotAll(t *testing.T, reader *rtClient, ch string, published int) {
	t.Helper()
	all := reader.Pubs(ch)
	if len(all) != published {
		t.Fatalf("reader got %d publications, want %d", len(all), published)
	}
	wantContiguous(t, "reader", all, 1)
	for _, m := range reader.AllPushes() {
		if m.Missed != 0 {
			t.Fatalf("reader was told it missed %d", m.Missed)
		}
	}
}

// wantContiguous checks that pubs have offsets from, from+1, ... in order.
func wantContiguous(t *testing.T, who string, pubs []protocol.ServerMessage, from uint64) {
	t.Helper()
	for i, m := range pubs {
		if want := from + uint64(i); m.Offset != want {
			t.Fatalf("%s: publication %d has offset %d, want %d (offsets must rise by 1 with no gap or repeat)", who, i, m.Offset, want)
		}
	}
}

func TestRealtimeFanOut(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const nClients, nPubs, ch = 50, 20, "chat:fanout"
	clients := make([]*rtClient, nClients)
	for i := range clients {
		clients[i] = dialRT(t, s, fmt.Sprintf("name=u%d", i))
		if r := clients[i].Subscribe(ch); r.Offset != 0 {
			t.Fatalf("fresh channel at offset %d", r.Offset)
		}
	}
	pub := clients[7]
	for n := 0; n < nPubs; n++ {
		data := fmt.Sprintf(`{"n":%d}`, n)
		var off uint64
		if n%2 == 0 {
			off = pub.Publish(ch, data).Offset
		} else {
			off = apiPublish(t, s, ch, data).Offset
		}
		if off != uint64(n+1) {
			t.Fatalf("publication %d got offset %d", n, off)
		}
	}
	for i, c := range clients {
		c.WaitPubs(ch, nPubs, 10*time.Second)
		c.Ping() // every copy was queued before this reply: duplicates would show now
		got := c.Pubs(ch)
		if len(got) != nPubs {
			t.Fatalf("client %d got %d publications, want exactly %d", i, len(got), nPubs)
		}
		wantContiguous(t, fmt.Sprintf("client %d", i), got, 1)
		for j, m := range got {
			if n := pubN(t, m); n != j {
				t.Fatalf("client %d: publication %d carries n=%d", i, j, n)
			}
			if j%2 == 0 && (m.Info == nil || m.Info.Name != "u7" || m.Info.User != "") {
				t.Fatalf("client %d: client publication info %+v, want guest u7", i, m.Info)
			}
			if j%2 == 1 && m.Info != nil {
				t.Fatalf("client %d: server publication has info %+v", i, m.Info)
			}
		}
	}
}

func TestRealtimeOrderPerChannel(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch, perPublisher = "chat:order", 15
	subs := make([]*rtClient, 5)
	for i := range subs {
		subs[i] = dialRT(t, s, "")
		subs[i].Subscribe(ch)
	}
	p1, p2 := subs[0], subs[1] // publishers are subscribers too

	// Three publishers at once: two clients (each a batch of publishes in
	// one frame) and the HTTP API.
	batch := func(base int) []protocol.Command {
		cmds := make([]protocol.Command, perPublisher)
		for i := range cmds {
			cmds[i] = pubCmd(ch, base+i)
		}
		return cmds
	}
	var wg sync.WaitGroup
	var ids1, ids2 []uint64
	apiErrs := make(chan error, perPublisher)
	start := make(chan struct{})
	wg.Add(3)
	go func() { defer wg.Done(); <-start; ids1 = p1.SendBatch(batch(100)) }()
	go func() { defer wg.Done(); <-start; ids2 = p2.SendBatch(batch(200)) }()
	go func() {
		defer wg.Done()
		<-start
		for i := 0; i < perPublisher; i++ {
			body := fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, ch, 300+i)
			req, _ := http.NewRequest("POST", s.url("/api/publish"), strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testAPIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				apiErrs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				apiErrs <- fmt.Errorf("publish: HTTP %d", resp.StatusCode)
			}
		}
	}()
	close(start)
	wg.Wait()
	close(apiErrs)
	for err := range apiErrs {
		t.Fatal(err)
	}
	for _, id := range ids1 {
		if m := p1.Await(id); m.Error != nil {
			t.Fatalf("publisher 1: %+v", m.Error)
		}
	}
	for _, id := range ids2 {
		if m := p2.Await(id); m.Error != nil {
			t.Fatalf("publisher 2: %+v", m.Error)
		}
	}

	const total = 3 * perPublisher
	for i, c := range subs {
		got := c.WaitPubs(ch, total, 10*time.Second)
		c.Ping()
		if got = c.Pubs(ch); len(got) != total {
			t.Fatalf("subscriber %d: %d publications, want %d", i, len(got), total)
		}
		wantContiguous(t, fmt.Sprintf("subscriber %d", i), got, 1)
		// Each publisher's messages keep the order it sent them in.
		last := map[int]int{}
		for _, m := range got {
			n := pubN(t, m)
			src := n / 100
			if prev, ok := last[src]; ok && n != prev+1 {
				t.Fatalf("subscriber %d: publisher %d's n=%d came after n=%d", i, src, n, prev)
			}
			last[src] = n
		}
	}
}

func TestRealtimeChatPresenceAndJoinLeave(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:room"
	alice := dialRT(t, s, "name="+url.QueryEscape("爱丽丝"))
	alice.Subscribe(ch)
	bob := dialRT(t, s, "name=bob")
	bob.Subscribe(ch)

	join := alice.WaitPush("bob's join", func(m protocol.ServerMessage) bool {
		return m.Channel == ch && m.Join != nil && m.Join.Name == "bob"
	}).Join
	if join.Client == "" || join.User != "" {
		t.Fatalf("join info %+v", join)
	}
	bobID := join.Client

	var pr protocol.PresenceResult
	alice.OK(protocol.Command{Op: protocol.OpPresence, Channel: ch}, &pr)
	if pr.Count != 2 || len(pr.Clients) != 2 || pr.Clients[bobID].Name != "bob" {
		t.Fatalf("presence %+v", pr)
	}
	var aliceID string
	for id, info := range pr.Clients {
		if info.Client != id {
			t.Fatalf("presence lists %+v under %q", info, id)
		}
		if info.Name == "爱丽丝" {
			aliceID = id
		}
	}
	if aliceID == "" {
		t.Fatalf("alice missing from presence %+v", pr)
	}

	// A publication says who sent it.
	bob.Publish(ch, `{"n":1,"text":"hi"}`)
	if m := alice.WaitPubs(ch, 1, replyTimeout)[0]; m.Info == nil || m.Info.Client != bobID || m.Info.Name != "bob" {
		t.Fatalf("publication info %+v, want bob (%s)", m.Info, bobID)
	}

	// Unsubscribe: a leave, presence shrinks, and bob gets nothing more.
	bob.OK(protocol.Command{Op: protocol.OpUnsubscribe, Channel: ch}, nil)
	leave := alice.WaitPush("bob's leave", func(m protocol.ServerMessage) bool {
		return m.Channel == ch && m.Leave != nil && m.Leave.Client == bobID
	}).Leave
	if leave.Name != "bob" {
		t.Fatalf("leave info %+v", leave)
	}
	pr = protocol.PresenceResult{} // Unmarshal would merge into the old map
	alice.OK(protocol.Command{Op: protocol.OpPresence, Channel: ch}, &pr)
	if pr.Count != 1 || len(pr.Clients) != 1 || pr.Clients[aliceID].Name != "爱丽丝" {
		t.Fatalf("presence after unsubscribe %+v", pr)
	}
	apiPublish(t, s, ch, `{"n":2}`)
	alice.WaitPubs(ch, 2, replyTimeout)
	bob.Ping()
	if n := len(bob.Pubs(ch)); n != 1 {
		t.Fatalf("bob got %d publications; after unsubscribing he must get none", n)
	}

	// Disconnecting is a leave too, with the client's new identity.
	carol := dialRT(t, s, "name=carol")
	carol.Subscribe(ch)
	carolID := alice.WaitPush("carol's join", func(m protocol.ServerMessage) bool {
		return m.Join != nil && m.Join.Name == "carol"
	}).Join.Client
	carol.Close()
	alice.WaitPush("carol's leave on disconnect", func(m protocol.ServerMessage) bool {
		return m.Leave != nil && m.Leave.Client == carolID
	})
	var apiPr protocol.PresenceResult
	apiJSON(t, s, "GET", "/api/presence/"+ch, "", &apiPr)
	if apiPr.Count != 1 {
		t.Fatalf("presence after disconnect: %+v", apiPr)
	}
}

func TestRealtimeLivePresenceCountOnly(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "live:stage"
	a := dialRT(t, s, "name=a")
	a.Subscribe(ch)
	b := dialRT(t, s, "name=b")
	b.Subscribe(ch)

	m := a.Call(protocol.Command{Op: protocol.OpPresence, Channel: ch})
	if m.Error != nil || string(m.Result) != `{"count":2}` {
		t.Fatalf("live presence = %s %+v, want exactly {\"count\":2} (no member list)", m.Result, m.Error)
	}
	status, _, body := apiRequest(t, s, "GET", "/api/presence/"+ch, testAPIKey, "")
	if status != 200 || strings.TrimSpace(body) != `{"count":2}` {
		t.Fatalf("API live presence = %d %s", status, body)
	}

	b.OK(protocol.Command{Op: protocol.OpUnsubscribe, Channel: ch}, nil)
	c := dialRT(t, s, "name=c")
	c.Subscribe(ch)
	c.Close()
	// A publication after all that comes after any join/leave the server
	// would have sent (one ordered stream per channel).
	apiPublish(t, s, ch, `{"n":1}`)
	a.WaitPubs(ch, 1, replyTimeout)
	for _, raw := range a.AllPushes() {
		if raw.Join != nil || raw.Leave != nil {
			t.Fatalf("live: got a join/leave push %+v; live rooms send none", raw)
		}
	}
	waitFor(t, "live count 1", 3*time.Second, func() bool {
		m := a.Call(protocol.Command{Op: protocol.OpPresence, Channel: ch})
		return string(m.Result) == `{"count":1}`
	})
}

func TestRealtimeHistory(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:hist"
	c := dialRT(t, s, "name=hist")
	var epoch string
	for n := 1; n <= 5; n++ {
		epoch = c.Publish(ch, fmt.Sprintf(`{"n":%d}`, n)).Epoch
	}
	history := func(cmd protocol.Command) protocol.HistoryResult {
		t.Helper()
		cmd.Op, cmd.Channel = protocol.OpHistory, ch
		var h protocol.HistoryResult
		c.OK(cmd, &h)
		if h.Offset != 5 || h.Epoch != epoch {
			t.Fatalf("history position %d/%s, want 5/%s", h.Offset, h.Epoch, epoch)
		}
		return h
	}
	offsets := func(pubs []protocol.Publication) string {
		var parts []string
		for _, p := range pubs {
			parts = append(parts, fmt.Sprint(p.Offset))
		}
		return strings.Join(parts, ",")
	}
	if h := history(protocol.Command{}); offsets(h.Publications) != "1,2,3,4,5" {
		t.Fatalf("history: %s", offsets(h.Publications))
	} else if p := h.Publications[0]; string(p.Data) != `{"n":1}` || p.Info == nil || p.Info.Name != "hist" {
		t.Fatalf("history keeps data and info: %+v", p)
	}
	if h := history(protocol.Command{Limit: 3}); offsets(h.Publications) != "3,4,5" {
		t.Fatalf("history limit 3: %s", offsets(h.Publications))
	}
	if h := history(protocol.Command{Since: &protocol.Position{Offset: 2, Epoch: epoch}}); offsets(h.Publications) != "3,4,5" {
		t.Fatalf("history since 2: %s", offsets(h.Publications))
	}
	if h := history(protocol.Command{Since: &protocol.Position{Offset: 2, Epoch: epoch}, Limit: 2}); offsets(h.Publications) != "3,4" {
		t.Fatalf("history since 2 limit 2: %s", offsets(h.Publications))
	}
	if h := history(protocol.Command{Since: &protocol.Position{Offset: 5, Epoch: epoch}}); len(h.Publications) != 0 {
		t.Fatalf("history since the top: %s", offsets(h.Publications))
	}
	c.Fails(protocol.Command{Op: protocol.OpHistory, Channel: ch, Since: &protocol.Position{Offset: 2, Epoch: "wrong"}}, protocol.CodeNotFound)

	api := func(q string) string {
		t.Helper()
		var h protocol.HistoryResult
		apiJSON(t, s, "GET", "/api/history/"+ch+q, "", &h)
		if h.Offset != 5 || h.Epoch != epoch {
			t.Fatalf("API history%s position %d/%s", q, h.Offset, h.Epoch)
		}
		return offsets(h.Publications)
	}
	for q, want := range map[string]string{
		"": "1,2,3,4,5", "?limit=2": "4,5", "?since=3": "4,5", "?since=3&limit=1": "4",
		"?since=0": "1,2,3,4,5", "?since=5": "", "?since=3&epoch=" + epoch: "4,5", "?limit=1000": "1,2,3,4,5",
	} {
		if got := api(q); got != want {
			t.Errorf("API history%s = %q, want %q", q, got, want)
		}
	}
	status, _, body := apiRequest(t, s, "GET", "/api/history/"+ch+"?since=3&epoch=wrong", testAPIKey, "")
	wantAPIError(t, "history of another epoch", status, body, 404, "not_found")
}

func TestRealtimeRecovery(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:recover"
	first := dialRT(t, s, "")
	r := first.Subscribe(ch)
	for n := 1; n <= 3; n++ {
		apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d}`, n))
	}
	seen := first.WaitPubs(ch, 3, replyTimeout)
	last := protocol.Position{Offset: seen[2].Offset, Epoch: r.Epoch}
	first.Close()

	for n := 4; n <= 6; n++ { // missed while away
		apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d}`, n))
	}

	recoverSub := func(c *rtClient, pos protocol.Position) (protocol.SubscribeResult, string) {
		t.Helper()
		m := c.Call(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Recover: &pos})
		if m.Error != nil {
			t.Fatalf("subscribe with recover: %+v", m.Error)
		}
		var res protocol.SubscribeResult
		if err := json.Unmarshal(m.Result, &res); err != nil {
			t.Fatal(err)
		}
		return res, string(m.Result)
	}

	// A new connection picks up exactly what it missed, then live ones.
	second := dialRT(t, s, "")
	res, _ := recoverSub(second, last)
	if res.Recovered == nil || !*res.Recovered || res.Offset != 6 || res.Epoch != r.Epoch {
		t.Fatalf("recover: %+v", res)
	}
	if len(res.Publications) != 3 {
		t.Fatalf("recovered %d publications, want 3: %+v", len(res.Publications), res.Publications)
	}
	for i, p := range res.Publications {
		if p.Offset != uint64(4+i) || string(p.Data) != fmt.Sprintf(`{"n":%d}`, 4+i) {
			t.Fatalf("recovered publication %d: %+v", i, p)
		}
	}
	apiPublish(t, s, ch, `{"n":7}`)
	got := second.WaitPubs(ch, 1, replyTimeout)
	second.Ping()
	if got = second.Pubs(ch); len(got) != 1 || got[0].Offset != 7 {
		t.Fatalf("after recovery the pushes are %+v, want only offset 7", got)
	}

	// Nothing missed: recovered with no publications.
	res, _ = recoverSub(dialRT(t, s, ""), protocol.Position{Offset: 7, Epoch: r.Epoch})
	if res.Recovered == nil || !*res.Recovered || len(res.Publications) != 0 || res.Offset != 7 {
		t.Fatalf("recover at the top: %+v", res)
	}

	notRecovered := func(what string, pos protocol.Position, top uint64) {
		t.Helper()
		res, raw := recoverSub(dialRT(t, s, ""), pos)
		if res.Recovered == nil || *res.Recovered || len(res.Publications) != 0 ||
			!strings.Contains(raw, `"recovered":false`) || res.Offset != top || res.Epoch != r.Epoch {
			t.Fatalf("%s: %s, want recovered:false, no publications, offset %d", what, raw, top)
		}
	}
	notRecovered("wrong epoch", protocol.Position{Offset: 3, Epoch: "0badc0ffee00"}, 7)
	notRecovered("offset from the future", protocol.Position{Offset: 99, Epoch: r.Epoch}, 7)

	// A gap longer than the history (100 in chat) cannot be recovered.
	for n := 8; n <= 108; n++ {
		apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d}`, n))
	}
	notRecovered("gap of 101", protocol.Position{Offset: 7, Epoch: r.Epoch}, 108)
	notRecovered("gap of 105", last, 108)
	// A gap of exactly the history size still is.
	res, _ = recoverSub(dialRT(t, s, ""), protocol.Position{Offset: 8, Epoch: r.Epoch})
	if res.Recovered == nil || !*res.Recovered || len(res.Publications) != 100 {
		t.Fatalf("gap of 100: recovered=%v with %d publications", res.Recovered, len(res.Publications))
	}
	for i, p := range res.Publications {
		if p.Offset != uint64(9+i) {
			t.Fatalf("gap of 100: publication %d has offset %d", i, p.Offset)
		}
	}
}

// TestRealtimeSubscribeWhilePublishing subscribes (plain and with
// recovery) while the API publishes as fast as it can: the subscribe reply
// and the pushes after it must split the stream exactly, with nothing
// repeated and nothing skipped.
func TestRealtimeSubscribeWhilePublishing(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:busy"
	pubErrs, stop := publishUntilStopped(s, ch, 3)
	defer stop()

	var last *protocol.Position
	recovered := 0
	for i := 0; i < 40; i++ {
		c := dialRT(t, s, "")
		m := c.Call(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Recover: last})
		if m.Error != nil {
			t.Fatalf("subscribe: %+v", m.Error)
		}
		var res protocol.SubscribeResult
		if err := json.Unmarshal(m.Result, &res); err != nil {
			t.Fatal(err)
		}
		if last != nil && res.Recovered != nil && *res.Recovered {
			recovered++
			want := last.Offset + 1
			for _, p := range res.Publications {
				if p.Offset != want {
					t.Fatalf("iteration %d: recovered offset %d, want %d", i, p.Offset, want)
				}
				want++
			}
			if want != res.Offset+1 {
				t.Fatalf("iteration %d: recovered up to %d, but the reply is at %d", i, want-1, res.Offset)
			}
		}
		if !c.WaitOffset(ch, res.Offset+5, replyTimeout) {
			select {
			case err := <-pubErrs:
				t.Fatal(err)
			default:
			}
			t.Fatalf("iteration %d: no pushes after offset %d", i, res.Offset)
		}
		got := c.Pubs(ch)
		wantContiguous(t, fmt.Sprintf("iteration %d (reply at offset %d)", i, res.Offset), got, res.Offset+1)
		last = &protocol.Position{Offset: got[len(got)-1].Offset, Epoch: res.Epoch}
		c.Close()
	}
	t.Logf("%d of 39 resubscribes recovered", recovered)
	if recovered == 0 {
		t.Fatal("no resubscribe recovered; the publishers outran the history every time")
	}
}

// TestRealtimeErrorCodes reaches every error code a client can cause and
// checks, after each, that the connection still answers a ping.
func TestRealtimeErrorCodes(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	sub := func(ch string) protocol.Command { return protocol.Command{Op: protocol.OpSubscribe, Channel: ch} }
	pubTo := func(ch string) protocol.Command { return pubCmd(ch, 1) }

	const rawID = 999 // ids the client's own counter will not reach here
	cases := []struct {
		name  string
		query string
		setup []protocol.Command
		raw   string           // sent as is when set
		cmd   protocol.Command // otherwise
		code  protocol.Code
	}{
		{name: "unknown op", raw: `{"id":999,"op":"explode"}`, code: protocol.CodeBadRequest},
		{name: "missing op", raw: `{"id":999}`, code: protocol.CodeBadRequest},
		{name: "missing channel", raw: `{"id":999,"op":"subscribe"}`, code: protocol.CodeBadRequest},
		{name: "missing data", raw: `{"id":999,"op":"publish","channel":"chat:a"}`, code: protocol.CodeBadRequest},
		{name: "null data", raw: `{"id":999,"op":"publish","channel":"chat:a","data":null}`, code: protocol.CodeBadRequest},
		{name: "recover without epoch", raw: `{"id":999,"op":"subscribe","channel":"chat:a","recover":{"offset":1}}`, code: protocol.CodeBadRequest},
		{name: "negative limit", raw: `{"id":999,"op":"history","channel":"chat:a","limit":-1}`, code: protocol.CodeBadRequest},
		{name: "channel not a string", raw: `{"id":999,"op":"subscribe","channel":7}`, code: protocol.CodeBadRequest},
		{name: "subscribed twice", setup: []protocol.Command{sub("chat:a")}, cmd: sub("chat:a"), code: protocol.CodeBadRequest},
		{name: "connect after subscribe", setup: []protocol.Command{sub("chat:a")}, cmd: protocol.Command{Op: protocol.OpConnect, Name: "x"}, code: protocol.CodeBadRequest},
		{name: "connect with a too long name", cmd: protocol.Command{Op: protocol.OpConnect, Name: strings.Repeat("名", 33)}, code: protocol.CodeBadRequest},

		{name: "channel with a space", cmd: sub("chat:a b"), code: protocol.CodeBadChannel},
		{name: "channel with markup", cmd: sub("chat:<b>"), code: protocol.CodeBadChannel},
		{name: "channel with #", cmd: sub("chat:a#b"), code: protocol.CodeBadChannel},
		{name: "channel with non-ASCII", cmd: sub("chat:大厅"), code: protocol.CodeBadChannel},
		{name: "channel too long", cmd: sub("chat:" + strings.Repeat("x", 251)), code: protocol.CodeBadChannel},
		{name: "no namespace", cmd: sub("lobby"), code: protocol.CodeBadChannel},
		{name: "empty rest", cmd: sub("chat:"), code: protocol.CodeBadChannel},
		{name: "upper-case namespace", cmd: sub("Chat:a"), code: protocol.CodeBadChannel},
		{name: "unknown namespace", cmd: sub("nope:a"), code: protocol.CodeBadChannel},
		{name: "publish to unknown namespace", cmd: pubTo("nope:a"), code: protocol.CodeBadChannel},
		{name: "history of a bad channel", cmd: protocol.Command{Op: protocol.OpHistory, Channel: "chat:a b"}, code: protocol.CodeBadChannel},

		{name: "publish to push", cmd: pubTo("push:news"), code: protocol.CodeForbidden},
		{name: "guest publishes to user", cmd: pubTo("user:42"), code: protocol.CodeForbidden},
		{name: "user publishes to own user channel", query: "token=" + mintToken(t, "42", ""), cmd: pubTo("user:42"), code: protocol.CodeForbidden},
		{name: "user subscribes another user's channel", query: "token=" + mintToken(t, "42", ""), cmd: sub("user:43"), code: protocol.CodeForbidden},
		{name: "user reads another user's history", query: "token=" + mintToken(t, "42", ""), cmd: protocol.Command{Op: protocol.OpHistory, Channel: "user:43"}, code: protocol.CodeForbidden},

		{name: "publish over 16 KiB", cmd: protocol.Command{Op: protocol.OpPublish, Channel: "chat:a",
			Data: json.RawMessage(`"` + strings.Repeat("x", 16<<10) + `"`)}, code: protocol.CodeLimitExceeded},

		{name: "guest subscribes user channel", cmd: sub("user:42"), code: protocol.CodeUnauthorized},
		{name: "guest reads user history", cmd: protocol.Command{Op: protocol.OpHistory, Channel: "user:42"}, code: protocol.CodeUnauthorized},
		{name: "connect with a garbage token", cmd: protocol.Command{Op: protocol.OpConnect, Token: "not.a.token"}, code: protocol.CodeUnauthorized},
		{name: "connect with a token of another secret", cmd: protocol.Command{Op: protocol.OpConnect,
			Token: mintWith(t, strings.Repeat("k", 40), "42", "", time.Hour)}, code: protocol.CodeUnauthorized},
		{name: "connect with an expired token", cmd: protocol.Command{Op: protocol.OpConnect,
			Token: expiredToken(t)}, code: protocol.CodeUnauthorized},
		{name: "connect with an alg=none token", cmd: protocol.Command{Op: protocol.OpConnect,
			Token: noneToken(t)}, code: protocol.CodeUnauthorized},

		{name: "unsubscribe when not subscribed", cmd: protocol.Command{Op: protocol.OpUnsubscribe, Channel: "chat:a"}, code: protocol.CodeNotFound},
		{name: "presence where it is off", cmd: protocol.Command{Op: protocol.OpPresence, Channel: "push:news"}, code: protocol.CodeNotFound},
		{name: "history where it is off", cmd: protocol.Command{Op: protocol.OpHistory, Channel: "live:a"}, code: protocol.CodeNotFound},
		{name: "history since a lost position", cmd: protocol.Command{Op: protocol.OpHistory, Channel: "chat:a",
			Since: &protocol.Position{Offset: 3, Epoch: "0ld3p0ch"}}, code: protocol.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRT(t, s, tc.query)
			for _, cmd := range tc.setup {
				c.OK(cmd, nil)
			}
			if tc.raw != "" {
				c.SendRaw(tc.raw)
				c.WantErr(c.Await(rawID), tc.code, tc.raw)
			} else {
				c.Fails(tc.cmd, tc.code)
			}
			c.Ping()
			if tc.setup != nil {
				c.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:a"}, nil)
			}
		})
	}

	t.Run("malformed JSON has no id to answer", func(t *testing.T) {
		c := dialRT(t, s, "")
		for i, raw := range []string{`{"id":5,"op":`, `not json`, `[1,2]`, `{"id":"1","op":"ping"}`, `{"op":"ping"}`} {
			c.SendRaw(raw)
			if !c.WaitState(replyTimeout, func() bool { return len(c.AnonErrors()) > i }) {
				t.Fatalf("%s: no error reply", raw)
			}
			if e := c.AnonErrors()[i]; e.Code != protocol.CodeBadRequest || e.Message == "" {
				t.Fatalf("%s: error %+v, want bad_request", raw, e)
			}
			c.Ping()
		}
	})

	t.Run("several commands in one frame, one of them bad", func(t *testing.T) {
		c := dialRT(t, s, "")
		c.SendRaw("{\"id\":1,\"op\":\"ping\"}\n{\"id\":2,\"op\":\"subscribe\",\"channel\":\"nope:x\"}\r\n\n{\"id\":3,\"op\":\"subscribe\",\"channel\":\"chat:multi\"}")
		if m := c.Await(1); m.Error != nil {
			t.Fatalf("1: %+v", m)
		}
		c.WantErr(c.Await(2), protocol.CodeBadChannel, "2")
		if m := c.Await(3); m.Error != nil {
			t.Fatalf("3: %+v", m.Error)
		}
		apiPublish(t, s, "chat:multi", `{"n":1}`)
		c.WaitPubs("chat:multi", 1, replyTimeout)
	})
}

// expiredToken is a well-signed token for user 42 that expired an hour ago.
func expiredToken(t *testing.T) string {
	t.Helper()
	return rawToken(t, jwt.SigningMethodHS256, []byte(testTokenSecret), -time.Hour)
}

// noneToken is an unsigned ("alg":"none") token for user 42.
func noneToken(t *testing.T) string {
	t.Helper()
	return rawToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, time.Hour)
}

// rawToken signs claims for user 42 with any method and key, bypassing
// MintToken's own checks, to make tokens the server must refuse.
func rawToken(t *testing.T, method jwt.SigningMethod, key any, expiresIn time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, jwt.RegisteredClaims{
		Subject: "42", ExpiresAt: jwt.NewNumericDate(time.Now().Add(expiresIn)),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRealtimeSubscriptionLimit(t *testing.T) {
	t.Run("default 128", func(t *testing.T) {
		s := startServer(t, rtEnv(nil))
		c := dialRT(t, s, "")
		for i := 0; i < realtime.DefaultMaxSubscriptions; i++ {
			if i >= 90 {
				// Stay under the command rate (50/s after a burst of 100):
				// this pacing keeps the client polite, it synchronizes nothing.
				time.Sleep(25 * time.Millisecond)
			}
			c.Subscribe(fmt.Sprintf("chat:c%d", i))
		}
		e := c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "push:one-too-many"}, protocol.CodeLimitExceeded)
		if !strings.Contains(e.Message, "128") {
			t.Errorf("limit message %q does not say 128", e.Message)
		}
		c.Ping()
		c.OK(protocol.Command{Op: protocol.OpUnsubscribe, Channel: "chat:c0"}, nil)
		c.Subscribe("push:one-too-many") // room again
	})
	t.Run("MAX_SUBSCRIPTIONS=3", func(t *testing.T) {
		s := startServer(t, rtEnv(map[string]string{"MAX_SUBSCRIPTIONS": "3"}))
		c := dialRT(t, s, "")
		c.Subscribe("chat:a")
		c.Subscribe("live:b")
		c.Subscribe("push:c")
		c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "chat:d"}, protocol.CodeLimitExceeded)
		c.Ping()
		// The refused subscribe left nothing behind.
		apiPublish(t, s, "chat:d", `{"n":1}`)
		apiPublish(t, s, "chat:a", `{"n":2}`)
		c.WaitPubs("chat:a", 1, replyTimeout)
		if got := c.Pubs("chat:d"); len(got) != 0 {
			t.Fatalf("got %+v from a refused subscription", got)
		}
		// Another connection has its own budget.
		dialRT(t, s, "").Subscribe("chat:d")
	})
}

func TestRealtimeRateLimits(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:flood"
	bystander := dialRT(t, s, "name=bystander")
	bystander.Subscribe(ch)
	flooder := dialRT(t, s, "name=flooder")
	flooder.Subscribe(ch)

	// A burst over chat's publish limit (10/s, burst 20): the excess is
	// refused with rate_limited, and the connection survives.
	cmds := make([]protocol.Command, 30)
	for i := range cmds {
		cmds[i] = pubCmd(ch, i)
	}
	okCount, limited := 0, 0
	for _, id := range flooder.SendBatch(cmds) {
		m := flooder.Await(id)
		switch {
		case m.Error == nil:
			okCount++
		case m.Error.Code == protocol.CodeRateLimited:
			limited++
		default:
			t.Fatalf("publish: %+v", m.Error)
		}
	}
	if limited == 0 || okCount < 20 {
		t.Fatalf("30 publishes at once: %d accepted, %d rate_limited; want at least 20 and some refused", okCount, limited)
	}
	flooder.Ping()
	bystander.WaitPubs(ch, okCount, replyTimeout)

	// Keeping on flooding after being told to slow down closes with 1008.
	flood := make([]protocol.Command, 100)
	for i := range flood {
		flood[i] = pubCmd(ch, 1000+i)
	}
	flooder.SendBatch(flood)
	if code := flooder.WaitClose(replyTimeout); code != websocket.ClosePolicyViolation {
		t.Fatalf("sustained flood: close %d, want 1008", code)
	}

	// Everyone else is unaffected.
	bystander.Ping()
	bystander.Publish(ch, `{"n":9999}`)
	got := bystander.WaitPubs(ch, 1, replyTimeout)
	wantContiguous(t, "bystander", got, 1)
	other := dialRT(t, s, "")
	other.Subscribe(ch)
	other.Publish(ch, `{"n":10000}`)

	t.Run("live has a tighter publish limit", func(t *testing.T) {
		c := dialRT(t, s, "")
		cmds := make([]protocol.Command, 8)
		for i := range cmds {
			cmds[i] = pubCmd("live:flood", i)
		}
		limited := 0
		for _, id := range c.SendBatch(cmds) {
			if m := c.Await(id); m.Error != nil && m.Error.Code == protocol.CodeRateLimited {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("8 publishes at once on live: none rate_limited (limit 3/s, burst 5)")
		}
		c.Ping()
	})

	t.Run("command rate", func(t *testing.T) {
		c := dialRT(t, s, "")
		pings := make([]protocol.Command, 108) // burst 100, then 50/s
		for i := range pings {
			pings[i] = protocol.Command{Op: protocol.OpPing}
		}
		limited := 0
		for _, id := range c.SendBatch(pings) {
			if m := c.Await(id); m.Error != nil {
				if m.Error.Code != protocol.CodeRateLimited {
					t.Fatalf("ping: %+v", m.Error)
				}
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("108 commands at once: none rate_limited")
		}
		if c.ReadErr() != nil {
			t.Fatalf("closed after a few violations: %v", c.ReadErr())
		}
	})
}

// bigPad is the filler of the slow-consumer tests' publications: with
// WS_SEND_QUEUE_BYTES=65536 one fits in a queue and two do not.
var bigPad = strings.Repeat("弹", 20000) // 60000 bytes

func slowEnv() map[string]string {
	return rtEnv(map[string]string{"WS_SEND_QUEUE_BYTES": "65536", "WS_MAX_MESSAGE_BYTES": "65536"})
}

// TestRealtimeSlowConsumerDisconnect: on chat (policy disconnect) a
// subscriber that stops reading is closed with 1013 once its queue is
// full, while a reading subscriber of the same channel gets everything.
// Any one reply fits the send queue, so a client that reads is never
// closed for asking (issue 10 item 6): 100 history entries of 16 KB are
// 1.6 MB, more than the 1 MiB queue; four such history commands at once
// get four pages, each marked more, and the connection stays. With a
// smaller WS_SEND_QUEUE_BYTES the pages shrink with it.
func TestRealtimeLargeHistoryRepliesArePaged(t *testing.T) {
	for _, queue := range []int{1 << 20, 128 << 10} {
		s := startServer(t, rtEnv(map[string]string{"WS_SEND_QUEUE_BYTES": strconv.Itoa(queue)}))
		const ch = "chat:big"
		pad := strings.Repeat("x", 16000)
		for n := 1; n <= 100; n++ {
			apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d,"pad":%q}`, n, pad))
		}
		c := dialRT(t, s, "name=reader")
		cmds := make([]protocol.Command, 4)
		for i := range cmds {
			cmds[i] = protocol.Command{Op: protocol.OpHistory, Channel: ch}
		}
		for _, id := range c.SendBatch(cmds) {
			m := c.Await(id)
			if m.Error != nil {
				t.Fatalf("queue %d: history %d: %s", queue, id, m.Error.Code)
			}
			var h protocol.HistoryResult
			if err := json.Unmarshal(m.Result, &h); err != nil {
				t.Fatal(err)
			}
			if !h.More || len(h.Publications) == 0 || len(m.Result) > queue/2 {
				t.Fatalf("queue %d: a %d-byte page of %d publications, more=%v; want a page under half the queue, more=true",
					queue, len(m.Result), len(h.Publications), h.More)
			}
		}
		c.Ping()
		if err := c.ReadErr(); err != nil {
			t.Fatalf("queue %d: the reading client was closed: %v", queue, err)
		}
	}
}

func TestRealtimeSlowConsumerDisconnect(t *testing.T) {
	s := startServer(t, slowEnv())
	const ch = "chat:slow"
	reader := dialRT(t, s, "name=reader")
	reader.Subscribe(ch)
	slow := dialRT(t, s, "name=slow")
	slow.Subscribe(ch)
	slowID := reader.WaitPush("slow's join", func(m protocol.ServerMessage) bool {
		return m.Join != nil && m.Join.Name == "slow"
	}).Join.Client
	slow.PauseReading()

	slowLeft := func() bool {
		for _, m := range reader.AllPushes() {
			if m.Leave != nil && m.Leave.Client == slowID {
				return true
			}
		}
		return false
	}
	published := 0
	for ; published < 600; published++ {
		off := apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d,"pad":%q}`, published+1, bigPad)).Offset
		// The reader keeps up; it must never wait on the stalled client.
		if !reader.WaitOffset(ch, off, replyTimeout) {
			t.Fatalf("reader stuck before offset %d (reader: %v)", off, reader.ReadErr())
		}
		if (published%8 == 0 && scrapeMetric(t, s, "duplex_realtime_refused_total") > 0) || slowLeft() {
			published++
			break
		}
	}
	t.Logf("stalled subscriber overflowed after %d publications of %d bytes", published, len(bigPad))
	// The stalled one is dropped from the channel (a leave) ...
	reader.WaitPush("slow's leave", func(m protocol.ServerMessage) bool {
		return m.Leave != nil && m.Leave.Client == slowID
	})
	// ... and when it reads again it finds what was sent before the
	// overflow, in order with no gap, then close 1013.
	slow.ResumeReading()
	if code := slow.WaitClose(10 * time.Second); code != websocket.CloseTryAgainLater {
		t.Fatalf("stalled subscriber: close %d (%v), want 1013", code, slow.ReadErr())
	}
	got := slow.Pubs(ch)
	if len(got) == 0 || len(got) >= published {
		t.Fatalf("stalled subscriber got %d of %d publications", len(got), published)
	}
	wantContiguous(t, "stalled subscriber", got, 1)

	// The reader got every message exactly once and is still connected.
	reader.Ping()
	wantReaderGotAll(t, reader, ch, published)
	waitFor(t, "one connection left", 3*time.Second, func() bool { return s.app.Connections() == 1 })
}

// TestRealtimeSlowConsumerDropOldest: on live (policy drop-oldest) a
// subscriber that stops reading stays connected; when it reads again it is
// told exactly how many publications it missed, ahead of what it gets
// next, and sees the gap in the offsets. Commands it sent while its queue
// was full are all answered: drop-oldest drops publications only, never
// replies (issue 10, items 2 and 3). A reading subscriber loses nothing.
func TestRealtimeSlowConsumerDropOldest(t *testing.T) {
	// The queue's drop-oldest, so without the live namespace's flow
	// control, which skips ticks before the queue fills
	// (TestLiveFlowStalledViewerResumesWithFreshTicks).
	env := slowEnv()
	env["NAMESPACES"] = `{"live":{"flow_tick":"0s"}}`
	s := startServer(t, env)
	const ch = "live:slow"
	reader := dialRT(t, s, "name=reader")
	reader.Subscribe(ch)
	slow := dialRT(t, s, "name=slow")
	if r := slow.Subscribe(ch); r.Offset != 0 {
		t.Fatalf("new channel at offset %d", r.Offset)
	}
	slow.PauseReading()

	publish := func(n int) {
		off := apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d,"pad":%q}`, n, bigPad)).Offset
		if !reader.WaitOffset(ch, off, replyTimeout) {
			t.Fatalf("reader stuck before offset %d (reader: %v)", off, reader.ReadErr())
		}
	}
	published := 0
	for published < 600 {
		published++
		publish(published)
		if published%8 == 0 && scrapeMetric(t, s, "duplex_realtime_dropped_total") > 0 {
			break // the queue is full and dropping
		}
	}
	// Commands while the queue is full, then more publications that must
	// drop older publications, never these replies.
	pingID := slow.Send(protocol.Command{Op: protocol.OpPing})
	presenceID := slow.Send(protocol.Command{Op: protocol.OpPresence, Channel: ch})
	historyID := slow.Send(protocol.Command{Op: protocol.OpHistory, Channel: "chat:nothing-here"})
	for range 10 {
		published++
		publish(published)
	}
	t.Logf("published %d publications of %d bytes", published, len(bigPad))
	if err := slow.ReadErr(); err != nil {
		t.Fatalf("stalled live subscriber was disconnected: %v", err)
	}
	if n := s.app.Connections(); n != 2 {
		t.Fatalf("%d connections, want 2: drop-oldest must not close", n)
	}

	slow.ResumeReading()
	if !slow.WaitOffset(ch, uint64(published), 10*time.Second) {
		t.Fatalf("resumed subscriber never got offset %d (reader: %v)", published, slow.ReadErr())
	}
	for _, id := range []uint64{pingID, presenceID, historyID} {
		if m := slow.Await(id); m.Error != nil && id != historyID {
			t.Fatalf("command %d answered with error %s", id, m.Error.Code)
		}
	}
	slow.Ping()
	got := slow.Pubs(ch)
	missed, gaps := 0, 0
	for _, m := range slow.AllPushes() {
		missed += m.Missed
	}
	prev := uint64(0) // the subscribe reply's offset: the channel was new
	for _, m := range got {
		switch {
		case m.Offset <= prev:
			t.Fatalf("offsets not increasing: %d after %d", m.Offset, prev)
		case m.Offset > prev+1:
			gaps++
		}
		prev = m.Offset
	}
	if gaps == 0 || len(got) >= published {
		t.Fatalf("resumed subscriber: %d of %d publications (%s), %d gaps; want a gap",
			len(got), published, describePushes(slow.AllPushes()), gaps)
	}
	if lost := published - len(got); missed != lost {
		t.Fatalf("resumed subscriber was told it missed %d, but lost %d of %d publications (%s)",
			missed, lost, published, describePushes(slow.AllPushes()))
	}
	if got[len(got)-1].Offset != uint64(published) {
		t.Fatalf("resumed subscriber's last publication is %d, want the newest %d", got[len(got)-1].Offset, published)
	}
	// Each loss is told ahead of the next publication the client gets.
	told, received := 0, 0
	for _, m := range slow.AllPushes() {
		told += m.Missed
		if m.Channel == ch && m.Data != nil {
			if lost := int(m.Offset) - 1 - received; told < lost {
				t.Fatalf("publication %d came after %d losses, but only %d were told (%s)",
					m.Offset, lost, told, describePushes(slow.AllPushes()))
			}
			received++
		}
	}

	reader.Ping()
	wantReaderGotAll(t, reader, ch, published)
}

func TestRealtimeIdentity(t *testing.T) {
	s := startServer(t, rtEnv(nil))

	t.Run("valid token", func(t *testing.T) {
		c := dialRT(t, s, "token="+mintToken(t, "42", "王五"))
		c.Subscribe("user:42")
		c.Subscribe("chat:id")
		c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "user:43"}, protocol.CodeForbidden)
		c.Fails(protocol.Command{Op: protocol.OpPresence, Channel: "user:43"}, protocol.CodeForbidden)
		c.Publish("chat:id", `{"n":1}`)
		m := c.WaitPubs("chat:id", 1, replyTimeout)[0]
		if m.Info == nil || m.Info.User != "42" || m.Info.Name != "王五" {
			t.Fatalf("publication info %+v, want user 42 named 王五", m.Info)
		}
		apiPublish(t, s, "user:42", `{"n":2}`)
		c.WaitPubs("user:42", 1, replyTimeout)
	})

	t.Run("token without a name", func(t *testing.T) {
		c := dialRT(t, s, "token="+mintToken(t, "u-7", "")+"&name=ignored")
		c.Subscribe("user:u-7")
		var pr protocol.PresenceResult
		c.Subscribe("chat:id2")
		c.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:id2"}, &pr)
		for _, info := range pr.Clients {
			if info.User != "u-7" || info.Name == "" {
				t.Fatalf("presence %+v", info)
			}
		}
	})

	t.Run("bad tokens are refused before the upgrade", func(t *testing.T) {
		for name, tok := range map[string]string{
			"garbage":        "garbage",
			"another secret": mintWith(t, strings.Repeat("k", 40), "42", "", time.Hour),
			"expired":        expiredToken(t),
			"alg none":       noneToken(t),
			"tampered":       mintToken(t, "42", "") + "x",
		} {
			_, status, err := tryDialRT(s, "token="+url.QueryEscape(tok))
			if err == nil || status != 401 {
				t.Errorf("%s token: HTTP %d, err %v; want 401", name, status, err)
			}
		}
	})

	t.Run("names", func(t *testing.T) {
		for _, q := range []string{
			"name=" + url.QueryEscape(strings.Repeat("名", 33)),
			"name=" + url.QueryEscape("a\x00b"),
			"name=" + url.QueryEscape("a\u202eb"),
		} {
			if _, status, err := tryDialRT(s, q); err == nil || status != 400 {
				t.Errorf("%s: HTTP %d, err %v; want 400", q, status, err)
			}
		}
		long := strings.Repeat("名", 32)
		c := dialRT(t, s, "name="+url.QueryEscape(long))
		c.Publish("chat:names", `{"n":1}`)
		var h protocol.HistoryResult
		c.OK(protocol.Command{Op: protocol.OpHistory, Channel: "chat:names"}, &h)
		if len(h.Publications) != 1 || h.Publications[0].Info == nil || h.Publications[0].Info.Name != long || h.Publications[0].Info.User != "" {
			t.Fatalf("history info %+v, want guest named %s", h.Publications, long)
		}
	})

	t.Run("guests cannot use user channels", func(t *testing.T) {
		c := dialRT(t, s, "name=guest")
		c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "user:42"}, protocol.CodeUnauthorized)
		c.Fails(protocol.Command{Op: protocol.OpPresence, Channel: "user:42"}, protocol.CodeUnauthorized)
		c.Ping()
		// A connect with a valid token signs in on the same connection.
		c.OK(protocol.Command{Op: protocol.OpConnect, Token: mintToken(t, "42", "")}, nil)
		c.Subscribe("user:42")
		c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "user:43"}, protocol.CodeForbidden)
	})
}

func TestRealtimeBadFrames(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	bystander := dialRT(t, s, "")
	bystander.Subscribe("chat:frames")
	for _, tc := range []struct {
		name string
		f    frame
		code int
	}{
		{"binary", frame{fin: true, opcode: opBinary, payload: []byte(`{"id":1,"op":"ping"}`)}, 1003},
		{"invalid UTF-8", frame{fin: true, opcode: opText, payload: []byte("{\"id\":1,\"op\":\"ping\",\"x\":\"\xff\"}")}, 1007},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.addr, "/realtime")
			// Subscribed first, so the close also has to clean up a subscription.
			c.send(frame{fin: true, opcode: opText, payload: []byte(`{"id":1,"op":"subscribe","channel":"chat:frames"}`)})
			if op, p := c.read(3 * time.Second); op != opText || !strings.Contains(string(p), `"id":1,"result"`) {
				t.Fatalf("subscribe reply: %d %s", op, p)
			}
			c.send(tc.f)
			for {
				op, p, err := c.tryRead(3 * time.Second)
				if err != nil {
					t.Fatalf("no close frame: %v", err)
				}
				if op == opClose {
					if len(p) < 2 {
						t.Fatalf("close frame without a code")
					}
					if code := int(p[0])<<8 | int(p[1]); code != tc.code {
						t.Fatalf("close %d (%s), want %d", code, p[2:], tc.code)
					}
					break
				}
			}
			bystander.Ping()
		})
	}
	waitFor(t, "only the bystander subscribed", 3*time.Second, func() bool {
		var pr protocol.PresenceResult
		bystander.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:frames"}, &pr)
		return pr.Count == 1
	})
}

func TestRealtimeNoGoroutineLeak(t *testing.T) {
	// 1,050 connections from one address, as fast as they go.
	s := startServer(t, manyClientsEnv(nil))
	// One cycle: connect, subscribe to a chat and a live room, then leave,
	// alternately with a close frame and by dropping the socket.
	cycle := func(i int) error {
		conn, status, err := tryDialRT(s, fmt.Sprintf("name=c%d", i))
		if err != nil {
			return fmt.Errorf("dial: %v (HTTP %d)", err, status)
		}
		defer conn.Close()
		cmd := fmt.Sprintf("{\"id\":1,\"op\":\"subscribe\",\"channel\":\"chat:leak%d\"}\n{\"id\":2,\"op\":\"subscribe\",\"channel\":\"live:leak\"}", i%7)
		_ = conn.SetWriteDeadline(time.Now().Add(replyTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(replyTimeout))
		replies := 0
		for replies < 2 {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return err
			}
			var bad error
			protocol.SplitLines(data, func(line []byte) bool {
				m, err := protocol.DecodeServerMessage(line)
				switch {
				case err != nil:
					bad = err
				case m.Error != nil:
					bad = m.Error
				case m.ID != 0:
					replies++
				}
				return bad == nil
			})
			if bad != nil {
				return bad
			}
		}
		if i%2 == 0 {
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		return nil
	}
	run := func(from, n, workers int) {
		t.Helper()
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < from+n; i += workers {
					if err := cycle(i); err != nil {
						errs <- fmt.Errorf("cycle %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// A few subscribers stay throughout, and see the churn.
	watcher := dialRT(t, s, "name=watcher")
	watcher.Subscribe("chat:leak0")
	watcher.Subscribe("live:leak")

	run(0, 50, 8) // warm up pools at the same concurrency
	waitFor(t, "warm-up connections closed", 10*time.Second, func() bool { return s.app.Connections() == 1 })
	http.DefaultClient.CloseIdleConnections()
	runtime.GC()
	before := runtime.NumGoroutine()

	run(50, 1000, 8)
	waitFor(t, "churn connections closed", 10*time.Second, func() bool { return s.app.Connections() == 1 })
	const tolerance = 15
	deadline := time.Now().Add(10 * time.Second)
	after := runtime.NumGoroutine()
	for after > before+tolerance && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		after = runtime.NumGoroutine()
	}
	if after > before+tolerance {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before 1,000 cycles, %d after (tolerance %d)\n%s", before, after, tolerance, buf[:n])
	}
	t.Logf("goroutines: %d before, %d after", before, after)

	// Nothing is left subscribed but the watcher.
	var chs struct {
		Channels []realtime.ChannelInfo `json:"channels"`
	}
	apiJSON(t, s, "GET", "/api/channels", "", &chs)
	if fmt.Sprint(chs.Channels) != fmt.Sprint([]realtime.ChannelInfo{{Channel: "chat:leak0", Subscribers: 1}, {Channel: "live:leak", Subscribers: 1}}) {
		t.Fatalf("channels after churn: %+v", chs.Channels)
	}
	var pr protocol.PresenceResult
	watcher.OK(protocol.Command{Op: protocol.OpPresence, Channel: "live:leak"}, &pr)
	if pr.Count != 1 {
		t.Fatalf("live count after churn = %d, want 1", pr.Count)
	}
	pr = protocol.PresenceResult{}
	watcher.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:leak0"}, &pr)
	if pr.Count != 1 {
		t.Fatalf("chat presence after churn = %+v, want only the watcher", pr)
	}
}

func TestRealtimeShutdownGoingAway(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"SHUTDOWN_TIMEOUT": "5s"}))
	clients := []*rtClient{dialRT(t, s, ""), dialRT(t, s, ""), dialRT(t, s, "token="+mintToken(t, "42", ""))}
	clients[0].Subscribe("chat:bye")
	clients[1].Subscribe("live:bye")
	clients[2].Subscribe("user:42")
	clients[2].Subscribe("chat:bye")
	// Queued messages go out before the close frame.
	apiPublish(t, s, "chat:bye", `{"n":1}`)
	apiPublish(t, s, "live:bye", `{"n":2}`)
	if err := s.shutdown(t, 5*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i, c := range clients {
		if code := c.WaitClose(replyTimeout); code != websocket.CloseGoingAway {
			t.Fatalf("client %d: close %d (%v), want 1001", i, code, c.ReadErr())
		}
	}
	if len(clients[0].Pubs("chat:bye")) != 1 || len(liveComments(clients[1], "live:bye")) != 1 || len(clients[2].Pubs("chat:bye")) != 1 {
		t.Fatal("a publication queued before shutdown was not delivered before the close")
	}
}

// describePushes summarizes pushes for failure messages: offsets, and
// missed notices as "missed:n".
func describePushes(ms []protocol.ServerMessage) string {
	var parts []string
	for _, m := range ms {
		switch {
		case m.Missed != 0:
			parts = append(parts, fmt.Sprintf("missed:%d", m.Missed))
		case m.Join != nil:
			parts = append(parts, "join")
		case m.Leave != nil:
			parts = append(parts, "leave")
		default:
			parts = append(parts, fmt.Sprint(m.Offset))
		}
	}
	return strings.Join(parts, " ")
}
