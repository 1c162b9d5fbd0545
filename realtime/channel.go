package realtime

import (
	"strings"

	"github.com/duplex/duplex/realtime/protocol"
)

// MaxChannelLength is the longest channel name, in bytes.
const MaxChannelLength = 255

// maxNamespaceLength bounds the namespace part of a channel name.
const maxNamespaceLength = 32

// Channel is a parsed, syntactically valid channel name "namespace:rest".
// It is a plain value, safe to copy and share.
type Channel struct {
	// Name is the full channel name, e.g. "chat:lobby".
	Name string
	// Namespace is the part before the first ':' ("chat").
	Namespace string
	// Rest is the part after the first ':' ("lobby"); for user channels it
	// is the user id.
	Rest string
}

// ParseChannel validates a channel name and splits it.
//
// The rules, chosen to be safe in URLs (/api/presence/:channel), log lines
// and HTML attributes without escaping:
//   - 1 to 255 bytes;
//   - every byte in [A-Za-z0-9_.@:-] ('#' is not allowed: user-limited
//     channels use the user namespace instead, and '#' would break URLs);
//   - a namespace before the first ':' of 1 to 32 bytes in [a-z0-9_-];
//   - a non-empty rest after it (which may contain further ':').
//
// Whether the namespace exists is checked by Namespaces.Lookup. Errors are
// *Error with code bad_channel.
func ParseChannel(name string) (Channel, error) {
	if name == "" {
		return Channel{}, protocol.Errorf(protocol.CodeBadChannel, "empty channel name")
	}
	if len(name) > MaxChannelLength {
		return Channel{}, protocol.Errorf(protocol.CodeBadChannel, "channel name longer than %d bytes", MaxChannelLength)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return Channel{}, protocol.Errorf(protocol.CodeBadChannel, "channel name may only contain A-Z a-z 0-9 _ . @ : -")
		}
	}
	ch := splitChannel(name)
	if !strings.Contains(name, ":") || ch.Rest == "" {
		return Channel{}, protocol.Errorf(protocol.CodeBadChannel, "channel name must be namespace:name")
	}
	if !validNamespaceName(ch.Namespace) {
		return Channel{}, protocol.Errorf(protocol.CodeBadChannel, "namespace must be 1-%d bytes of a-z 0-9 _ -", maxNamespaceLength)
	}
	return ch, nil
}

// splitChannel splits name at its first ':' into a Channel whose strings
// all share name's bytes; for a name ParseChannel has checked.
func splitChannel(name string) Channel {
	ns, rest, _ := strings.Cut(name, ":")
	return Channel{Name: name, Namespace: ns, Rest: rest}
}

func channelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', '@', ':':
		return true
	}
	return false
}

func validNamespaceName(ns string) bool {
	if ns == "" || len(ns) > maxNamespaceLength {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
