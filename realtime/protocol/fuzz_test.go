package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeCommand checks that the decoder never panics and always
// returns either a valid command or a coded bad_request error, and that a
// valid command survives EncodeCommand → DecodeCommand unchanged. The seed
// corpus in testdata/fuzz/FuzzDecodeCommand runs with plain `go test`.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"ping"}`,
		`{"id":2,"op":"subscribe","channel":"chat:lobby","recover":{"offset":3,"epoch":"e"}}`,
		`{"id":3,"op":"publish","channel":"live:1","data":{"t":"弹幕"}}`,
		`{"id":4,"op":"history","channel":"chat:a","limit":5}`,
		`{"id":5,"op":"connect","token":"x.y.z"}`,
		`{"id":1,"op":"nope"}`,
		`{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := DecodeCommand(in)
		if err != nil {
			if err.Code != CodeBadRequest || err.Message == "" {
				t.Fatalf("bad error %#v for %q", err, in)
			}
			return
		}
		if cmd.ID == 0 || !cmd.Op.Known() {
			t.Fatalf("invalid command %+v accepted from %q", cmd, in)
		}
		if cmd.Op.needsChannel() != (cmd.Channel != "") {
			t.Fatalf("channel mismatch %+v from %q", cmd, in)
		}
		if cmd.Op == OpPublish && (len(cmd.Data) == 0 || bytes.IndexByte(cmd.Data, '\n') >= 0) {
			t.Fatalf("bad data %q from %q", cmd.Data, in)
		}
		enc := EncodeCommand(cmd)
		again, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("re-decode of %s failed: %v", enc, err)
		}
		if !reflect.DeepEqual(again, cmd) {
			t.Fatalf("round trip changed %+v into %+v (%s)", cmd, again, enc)
		}
	})
}
