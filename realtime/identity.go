package realtime

import (
	"strings"
	"unicode"
	"unicode/utf8"

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
}

// Guest reports whether the identity is not authenticated.
func (id Identity) Guest() bool { return id.User == "" }

// CleanName trims a display name and checks it: 1 to MaxNameRunes
// characters, valid UTF-8, no control or format characters. Errors are
// bad_request. Names are shown to other users, who must escape them (the
// server never puts them in HTML).
func CleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is empty")
	case !utf8.ValidString(name):
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameRunes:
		return "", protocol.Errorf(protocol.CodeBadRequest, "name is longer than %d characters", MaxNameRunes)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf) {
			return "", protocol.Errorf(protocol.CodeBadRequest, "name contains control characters")
		}
	}
	return name, nil
}
