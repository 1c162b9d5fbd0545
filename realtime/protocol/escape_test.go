package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The server sends publication data byte for byte as it was published,
// whatever message carries it: a push, a history or recovery reply, a
// presence reply. Go's default JSON encoder rewrites <, > and & as \u003c
// and so on, which makes a reply's copy differ from the push's (and up to
// six times larger).
func TestServerEncodersDoNotEscapeHTML(t *testing.T) {
	data := json.RawMessage(`"<b>&</b>"`)
	info := &ClientInfo{Client: "1", Name: "<Tom & Jerry>"}
	pub := Publication{Offset: 1, Data: data, Info: info}
	for name, frame := range map[string][]byte{
		"push":     EncodePublication("chat:a", pub),
		"join":     EncodeJoin("chat:a", *info),
		"history":  EncodeResult(1, HistoryResult{Publications: []Publication{pub}, Epoch: "e"}),
		"recover":  EncodeResult(2, SubscribeResult{Publications: []Publication{pub}, Epoch: "e"}),
		"presence": EncodeResult(3, PresenceResult{Count: 1, Clients: map[string]ClientInfo{"1": *info}}),
		"error":    EncodeError(4, Errorf(CodeBadRequest, "unknown op %q", "<x>")),
		"command":  EncodeCommand(Command{ID: 5, Op: OpPublish, Channel: "chat:a", Data: data}),
	} {
		if bytes.Contains(frame, []byte(`\u00`)) {
			t.Errorf("%s: HTML-escaped: %s", name, frame)
		}
		if !json.Valid(frame) || bytes.IndexByte(frame, '\n') >= 0 {
			t.Errorf("%s: not one JSON line: %q", name, frame)
		}
	}
}

func TestPublicationSizeIsExact(t *testing.T) {
	for _, p := range []Publication{
		{Offset: 1, Data: json.RawMessage(`1`)},
		{Offset: 18446744073709551615, Data: json.RawMessage(`{"t":"<弹幕>&\u2028"}`), Info: &ClientInfo{Client: "n-1", User: "42", Name: "李旺 <&>"}},
		{Offset: 7, Data: json.RawMessage(`"` + "\u2028\u2029" + `"`), Info: &ClientInfo{}},
	} {
		b, err := marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := PublicationSize(p); got != len(b) {
			t.Errorf("PublicationSize %d, encoded %d: %s", got, len(b), b)
		}
	}
}

// A page assembled from entries decodes like the PresenceResult the
// generic encoder would make.
func TestEncodePresencePage(t *testing.T) {
	a := ClientInfo{Client: "n-1", Name: "李旺 <&>"}
	b := ClientInfo{Client: "n-2", User: "42", Name: "b"}
	for _, tt := range []struct {
		entries [][]byte
		next    string
		want    PresenceResult
	}{
		{nil, "", PresenceResult{Count: 0}},
		{[][]byte{EncodePresenceEntry(a), EncodePresenceEntry(b)}, "", PresenceResult{Count: 2, Clients: map[string]ClientInfo{"n-1": a, "n-2": b}}},
		{[][]byte{EncodePresenceEntry(a)}, "n-1", PresenceResult{Count: 2, Clients: map[string]ClientInfo{"n-1": a}, More: true, Next: "n-1"}},
	} {
		page := EncodePresencePage(tt.want.Count, tt.entries, tt.next)
		want, _ := marshal(tt.want)
		if string(page) != string(want) {
			t.Errorf("page %s\nwant %s", page, want)
		}
	}
	if got := string(EncodeResultJSON(3, []byte(`{"count":1}`))); got != `{"id":3,"result":{"count":1}}` {
		t.Errorf("EncodeResultJSON: %s", got)
	}
}
