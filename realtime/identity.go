package realtime

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/duplex/duplex/realtime/protocol"
)

// MaxNameRunes is the longest display name, in characters.
const MaxNameRunes = 32

// Identity is who a connection is: an authenticated user (User set, from
// a verified token) or a guest (User empty) with a nickname. It is a
// plain value.
type Identity struct {
	// User is the authenticated user id (the token's sub); empty for guests.
	User string
	// Name is the display name shown to others.
	Name string
	// Info is extra information about the connection from the connect
	// hook (compact JSON, or nil), shown with it as conn_info.
	Info json.RawMessage
	// Expires is when the identity's token expires (its exp claim); zero
	// for guests and identities without one. The server closes the
	// connection TokenLeeway after it unless a refresh extends it.
	Expires time.Time
}

// Guest reports whether the identity is not authenticated.
func (id Identity) Guest() bool { return id.User == "" }

// CleanName checks a display name and returns its enforced form: the
// PRECIS Nickname profile (RFC 8266: spaces of any width become one ASCII
// space, leading and trailing ones go, NFKC; control, format, unassigned
// and old Hangul filler characters are refused), 1 to MaxNameRunes
// characters, and at least one visible character, so that nobody is
// named by fillers, blank braille or a lone combining mark. Errors are
// bad_request. Names are shown to other users, who must escape them (the
// server never puts them in HTML). It is safe for concurrent use.
func CleanName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is not valid UTF-8")
	}
	trimmed := strings.TrimSpace(name)
	switch {
	case trimmed == "":
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is empty")
	case utf8.RuneCountInString(trimmed) > MaxNameRunes:
		// Checked before the profile too, so it never works on long input.
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is longer than %d characters", MaxNameRunes)
	}
	for _, r := range trimmed {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf) {
			return "", protocol.Errorf(protocol.CodeBadRequest, "name contains control characters")
		}
	}
	out, err := precis.Nickname.String(trimmed)
	if err != nil {
		return "", protocol.Errorf(protocol.CodeBadRequest, "name contains characters that are not allowed in names")
	}
	switch {
	case utf8.RuneCountInString(out) > MaxNameRunes: // NFKC can expand
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is longer than %d characters", MaxNameRunes)
	case !strings.ContainsFunc(out, visible):
		return "", protocol.Errorf(protocol.CodeBadRequest, "name has no visible character")
	}
	return out, nil
}

// visible reports whether r draws something by itself. Spaces, marks
// (which only modify the character before them), default-ignorable code
// points (the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, U+034F…),
// variation selectors and the blank braille pattern U+2800 do not, though
// PRECIS allows some of them inside a name.
func visible(r rune) bool {
	return unicode.IsGraphic(r) && !unicode.IsSpace(r) && !unicode.IsMark(r) &&
		!unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) &&
		!unicode.Is(unicode.Variation_Selector, r) && r != '\u2800'
}
