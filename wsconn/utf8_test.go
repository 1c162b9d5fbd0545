package wsconn

import (
	"testing"
	"unicode/utf8"
)

// Any text cut anywhere gives the same verdict piece by piece as whole,
// and an invalid text is refused at the first piece that makes it so.
func TestUTF8StreamMatchesWholeValidation(t *testing.T) {
	texts := []string{
		"", "hello", "李旺", "κόσμε", "🙂 ok", "a\u00e9\u4e2d\U0001F600z",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
		"\xf4\x90\x80\x80",         // past U+10FFFF
		"\xc0\xaf", "\xe0\x80\xaf", // overlong
		"ok\xff", "\x80", "李"[:2], "🙂"[:3],
	}
	for _, text := range texts {
		whole := utf8.ValidString(text)
		for cut := 0; cut <= len(text); cut++ {
			var u utf8Stream
			ok := u.write([]byte(text[:cut])) && u.write([]byte(text[cut:])) && u.complete()
			if ok != whole {
				t.Errorf("%q cut at %d: %v, whole says %v", text, cut, ok, whole)
			}
		}
	}
}

func TestUTF8StreamFailsFast(t *testing.T) {
	cases := []struct {
		name  string
		first string // refused as soon as this much has arrived
	}{
		{"surrogate", "\xed\xa0"},
		{"past U+10FFFF", "\xf4\x90"},
		{"overlong three-byte", "\xe0\x80"},
		{"invalid lead", "ok\xc1"},
		{"bad continuation", "\xe4\xb8A"},
		{"lone continuation", "ab\x80"},
	}
	for _, tc := range cases {
		var u utf8Stream
		if u.write([]byte(tc.first)) {
			t.Errorf("%s: %q accepted, though nothing can make it valid", tc.name, tc.first)
		}
	}
	var u utf8Stream
	if !u.write([]byte("李"[:1])) || !u.write([]byte("李"[1:2])) || u.complete() || !u.write([]byte("李"[2:])) || !u.complete() {
		t.Error("李 fed byte by byte was refused or left incomplete")
	}
}
