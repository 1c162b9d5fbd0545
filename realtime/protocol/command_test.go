package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeCommandValid(t *testing.T) {
	tests := []struct {
		in   string
		want Command
	}{
		{`{"id":1,"op":"ping"}`, Command{ID: 1, Op: OpPing}},
		{`{"id":2,"op":"subscribe","channel":"chat:lobby"}`, Command{ID: 2, Op: OpSubscribe, Channel: "chat:lobby"}},
		{`{"id":3,"op":"subscribe","channel":"chat:a","recover":{"offset":7,"epoch":"e1"}}`,
			Command{ID: 3, Op: OpSubscribe, Channel: "chat:a", Recover: &Position{7, "e1"}}},
		{"{\"id\":4,\"op\":\"publish\",\"channel\":\"chat:a\",\"data\":{ \"text\" :\n \"hi\" }}",
			Command{ID: 4, Op: OpPublish, Channel: "chat:a", Data: json.RawMessage(`{"text":"hi"}`)}},
		{`{"id":5,"op":"history","channel":"chat:a","limit":10,"since":{"offset":0,"epoch":"x"}}`,
			Command{ID: 5, Op: OpHistory, Channel: "chat:a", Limit: 10, Since: &Position{0, "x"}}},
		{`{"id":6,"op":"connect","token":"abc"}`, Command{ID: 6, Op: OpConnect, Token: "abc"}},
		{`{"id":7,"op":"connect","name":"李旺"}`, Command{ID: 7, Op: OpConnect, Name: "李旺"}},
		// Fields that do not belong to the op are dropped.
		{`{"id":8,"op":"ping","channel":"chat:a","data":1,"extra":true}`, Command{ID: 8, Op: OpPing}},
		{`{"id":18446744073709551615,"op":"presence","channel":"live:x"}`, Command{ID: 18446744073709551615, Op: OpPresence, Channel: "live:x"}},
		{`{"id":9,"op":"subscribe","channel":"push:px","latest":1}`, Command{ID: 9, Op: OpSubscribe, Channel: "push:px", Latest: 1}},
		// latest with recover: the hub recovers, and falls back to latest.
		{`{"id":10,"op":"subscribe","channel":"push:px","latest":3,"recover":{"offset":7,"epoch":"e1"}}`,
			Command{ID: 10, Op: OpSubscribe, Channel: "push:px", Latest: 3, Recover: &Position{7, "e1"}}},
		// latest belongs to subscribe only.
		{`{"id":11,"op":"history","channel":"chat:a","latest":3}`, Command{ID: 11, Op: OpHistory, Channel: "chat:a"}},
	}
	for _, tt := range tests {
		got, err := DecodeCommand([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: unexpected error %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	tests := []struct {
		in     string
		wantID uint64
		msg    string
	}{
		{``, 0, "malformed"},
		{`not json`, 0, "malformed"},
		{`[1,2]`, 0, "malformed"},
		{`{"id":1,"op":"ping"} trailing`, 0, "malformed"},
		{`{"op":"ping"}`, 0, "missing field: id"},
		{`{"id":0,"op":"ping"}`, 0, "id must be"},
		{`{"id":-1,"op":"ping"}`, 0, "id must be"},
		{`{"id":1.5,"op":"ping"}`, 0, "id must be"},
		{`{"id":"1","op":"ping"}`, 0, "id must be"},
		{`{"id":1}`, 1, "missing field: op"},
		{`{"id":1,"op":"explode"}`, 1, "unknown op"},
		{`{"id":2,"op":"subscribe"}`, 2, "missing field: channel"},
		{`{"id":2,"op":"subscribe","channel":""}`, 2, "missing field: channel"},
		{`{"id":2,"op":"subscribe","channel":5}`, 2, "malformed"},
		{`{"id":3,"op":"publish","channel":"chat:a"}`, 3, "missing field: data"},
		{`{"id":3,"op":"publish","channel":"chat:a","data":null}`, 3, "missing field: data"},
		{`{"id":4,"op":"subscribe","channel":"chat:a","recover":{"epoch":"e"}}`, 4, "recover.offset"},
		{`{"id":4,"op":"subscribe","channel":"chat:a","recover":{"offset":1}}`, 4, "recover.epoch"},
		{`{"id":5,"op":"history","channel":"chat:a","limit":-1}`, 5, "limit"},
		{`{"id":5,"op":"history","channel":"chat:a","since":{"offset":1}}`, 5, "since.epoch"},
		{`{"id":6,"op":"connect","token":"t","name":"n"}`, 6, "not both"},
		{`{"id":7,"op":"subscribe","channel":"chat:a","latest":0}`, 7, "latest must be >= 1"},
		{`{"id":7,"op":"subscribe","channel":"chat:a","latest":-2}`, 7, "latest must be >= 1"},
		{`{"id":7,"op":"subscribe","channel":"chat:a","latest":1.5}`, 7, "malformed"},
		{`{"id":7,"op":"subscribe","channel":"chat:a","latest":"1"}`, 7, "malformed"},
	}
	for _, tt := range tests {
		got, err := DecodeCommand([]byte(tt.in))
		if err == nil {
			t.Errorf("%s: no error, got %+v", tt.in, got)
			continue
		}
		if err.Code != CodeBadRequest || !strings.Contains(err.Message, tt.msg) {
			t.Errorf("%s: got %v, want bad_request containing %q", tt.in, err, tt.msg)
		}
		if got.ID != tt.wantID {
			t.Errorf("%s: id %d, want %d", tt.in, got.ID, tt.wantID)
		}
	}
}

func TestEncodeReplies(t *testing.T) {
	if got := string(EncodeResult(3, PublishResult{Offset: 42, Epoch: "ab"})); got != `{"id":3,"result":{"offset":42,"epoch":"ab"}}` {
		t.Errorf("result: %s", got)
	}
	if got := string(EncodeError(4, Errorf(CodeForbidden, "no"))); got != `{"id":4,"error":{"code":"forbidden","message":"no"}}` {
		t.Errorf("error: %s", got)
	}
	if got := string(EncodeError(0, Errorf(CodeBadRequest, "x"))); got != `{"error":{"code":"bad_request","message":"x"}}` {
		t.Errorf("error without id: %s", got)
	}
	// A latest reply always carries its list, even empty; a plain one none.
	empty := SubscribeResult{Offset: 0, Epoch: "ab", Publications: []Publication{}}
	if got := string(EncodeResult(5, empty)); got != `{"id":5,"result":{"offset":0,"epoch":"ab","publications":[]}}` {
		t.Errorf("empty latest: %s", got)
	}
	if got := string(EncodeResult(6, SubscribeResult{Offset: 2, Epoch: "ab"})); got != `{"id":6,"result":{"offset":2,"epoch":"ab"}}` {
		t.Errorf("plain subscribe: %s", got)
	}
	if got := string(EncodeResult(1, make(chan int))); !strings.Contains(got, `"internal"`) {
		t.Errorf("unencodable result: %s", got)
	}
}

func TestEncodePushes(t *testing.T) {
	pub := Publication{Offset: 42, Data: json.RawMessage(`{"text":"你好"}`), Info: &ClientInfo{Name: "李旺", User: "7"}}
	got := string(EncodePublication("chat:lobby", pub))
	want := `{"channel":"chat:lobby","offset":42,"data":{"text":"你好"},"info":{"user":"7","name":"李旺"}}`
	if got != want {
		t.Errorf("publication:\n got %s\nwant %s", got, want)
	}
	m, err := DecodeServerMessage([]byte(got))
	if err != nil || m.Channel != "chat:lobby" || m.Offset != 42 || m.Info.Name != "李旺" {
		t.Errorf("round trip: %+v %v", m, err)
	}
	if got := string(EncodeJoin("chat:a", ClientInfo{Client: "1", Name: "<b>"})); got != `{"channel":"chat:a","join":{"client":"1","name":"<b>"}}` {
		t.Errorf("join: %s", got)
	}
	if got := string(EncodeLeave("chat:a", ClientInfo{Client: "1"})); got != `{"channel":"chat:a","leave":{"client":"1"}}` {
		t.Errorf("leave: %s", got)
	}
	if got := string(EncodePresenceCount("chat:a", 2000)); got != `{"channel":"chat:a","presence_count":2000}` {
		t.Errorf("presence_count: %s", got)
	} else if m, err := DecodeServerMessage([]byte(got)); err != nil || m.PresenceCount != 2000 || m.Channel != "chat:a" {
		t.Errorf("presence_count round trip: %+v %v", m, err)
	}
	if got := string(EncodeMissed(5)); got != `{"missed":5}` {
		t.Errorf("missed: %s", got)
	}
}

func TestSplitLines(t *testing.T) {
	var got []string
	SplitLines([]byte("a\n\nb\r\n  \nc"), func(l []byte) bool { got = append(got, string(l)); return true })
	if !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("got %q", got)
	}
	n := 0
	SplitLines([]byte("a\nb\nc"), func([]byte) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("early stop: %d calls", n)
	}
}

func TestEncodeCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		{ID: 1, Op: OpPublish, Channel: "chat:x", Data: json.RawMessage(`[1,2]`)},
		{ID: 2, Op: OpSubscribe, Channel: "chat:x", Recover: &Position{0, "e"}},
		{ID: 3, Op: OpHistory, Channel: "chat:x", Since: &Position{5, "e"}, Limit: 3},
		{ID: 4, Op: OpSubscribe, Channel: "push:x", Latest: 2, Recover: &Position{9, "e"}},
	}
	for _, c := range cmds {
		b := EncodeCommand(c)
		if bytes.IndexByte(b, '\n') >= 0 {
			t.Errorf("newline in %s", b)
		}
		got, err := DecodeCommand(b)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("round trip %s: %+v %v", b, got, err)
		}
	}
}
