package wsclient

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The only extension the client knows (RFC 7692), and the window sizes
// its parameters may name.
const (
	deflateName        = "permessage-deflate"
	minWindowBits      = 8
	maxWindowBits      = 15
	defaultWindowBits  = maxWindowBits
	paramServerNoCtx   = "server_no_context_takeover"
	paramClientNoCtx   = "client_no_context_takeover"
	paramServerMaxBits = "server_max_window_bits"
	paramClientMaxBits = "client_max_window_bits"
)

// ErrBadExtensions: the server's Sec-WebSocket-Extensions answer is not
// one the client can accept (an extension or parameter it did not offer
// or does not know, a bad value, a repeated parameter). A browser fails
// the connection on such an answer, and so does Dial.
var ErrBadExtensions = errors.New("wsclient: unacceptable Sec-WebSocket-Extensions answer")

// deflateParams is what the server's answer negotiated.
type deflateParams struct {
	on bool
	// contextTakeover: the server keeps its LZ77 window across messages
	// (its answer lacks server_no_context_takeover), so the client must
	// inflate each compressed message against the previous ones' output.
	contextTakeover bool
	windowBits      int // server_max_window_bits, defaultWindowBits when absent
}

// offerParams is what the client's own offer allows the answer to say.
type offerParams struct {
	deflate bool
	// clientMaxBits: the offer had client_max_window_bits, so the answer
	// may name one.
	clientMaxBits bool
}

// parseOffer reads the client's own Sec-WebSocket-Extensions offer: which
// answers it allows. An offer the client could not honour (another
// extension) is refused, as it would make every answer unacceptable.
func parseOffer(offer string) (offerParams, error) {
	var o offerParams
	if strings.TrimSpace(offer) == "" {
		return o, nil
	}
	for ext := range strings.SplitSeq(offer, ",") {
		name, params, err := splitExtension(ext)
		if err != nil {
			return o, err
		}
		if name != deflateName {
			return o, fmt.Errorf("wsclient: Extensions offers %q: only %s is supported", name, deflateName)
		}
		o.deflate = true
		for _, p := range params {
			if p.name == paramClientMaxBits {
				o.clientMaxBits = true
			}
		}
	}
	return o, nil
}

// parseAnswer checks the server's Sec-WebSocket-Extensions answer against
// the offer, strictly: at most one extension, permessage-deflate, only if
// offered, each parameter at most once, known, with a valid value, and
// client_max_window_bits only if the offer allowed it.
func parseAnswer(answer string, o offerParams) (deflateParams, error) {
	var d deflateParams
	if strings.TrimSpace(answer) == "" {
		return d, nil
	}
	bad := func(format string, a ...any) (deflateParams, error) {
		return deflateParams{}, fmt.Errorf("%w: %q: %s", ErrBadExtensions, answer, fmt.Sprintf(format, a...))
	}
	if strings.Contains(answer, ",") {
		return bad("more than one extension")
	}
	name, params, err := splitExtension(answer)
	if err != nil {
		return bad("%v", err)
	}
	if name != deflateName || !o.deflate {
		return bad("extension %q was not offered", name)
	}
	d = deflateParams{on: true, contextTakeover: true, windowBits: defaultWindowBits}
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.name] {
			return bad("parameter %s repeated", p.name)
		}
		seen[p.name] = true
		switch p.name {
		case paramServerNoCtx, paramClientNoCtx:
			if p.hasValue {
				return bad("parameter %s takes no value", p.name)
			}
			if p.name == paramServerNoCtx {
				d.contextTakeover = false
			}
		case paramServerMaxBits, paramClientMaxBits:
			if p.name == paramClientMaxBits && !o.clientMaxBits {
				return bad("parameter %s was not offered", p.name)
			}
			bits, err := windowBitsValue(p)
			if err != nil {
				return bad("%v", err)
			}
			if p.name == paramServerMaxBits {
				d.windowBits = bits
			}
		default:
			return bad("unknown parameter %q", p.name)
		}
	}
	return d, nil
}

// extParam is one extension parameter: name, or name=value (the value
// unquoted).
type extParam struct {
	name, value string
	hasValue    bool
}

// splitExtension splits "name; p1; p2=v" into its name and parameters,
// lower-casing the names (tokens are case-insensitive).
func splitExtension(ext string) (string, []extParam, error) {
	parts := strings.Split(ext, ";")
	name := strings.ToLower(strings.TrimSpace(parts[0]))
	if !isToken(name) {
		return "", nil, fmt.Errorf("bad extension name %q", parts[0])
	}
	params := make([]extParam, 0, len(parts)-1)
	for _, raw := range parts[1:] {
		k, v, hasValue := strings.Cut(raw, "=")
		p := extParam{name: strings.ToLower(strings.TrimSpace(k)), hasValue: hasValue}
		if !isToken(p.name) {
			return "", nil, fmt.Errorf("bad parameter %q", raw)
		}
		if hasValue {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if !isToken(v) {
				return "", nil, fmt.Errorf("bad value of parameter %q", raw)
			}
			p.value = v
		}
		params = append(params, p)
	}
	return name, params, nil
}

// windowBitsValue is a *_max_window_bits parameter's value, which must be
// there, in the answer, and in [8, 15].
func windowBitsValue(p extParam) (int, error) {
	if !p.hasValue {
		return 0, fmt.Errorf("parameter %s needs a value in an answer", p.name)
	}
	bits, err := strconv.Atoi(p.value)
	if err != nil || bits < minWindowBits || bits > maxWindowBits || strconv.Itoa(bits) != p.value {
		return 0, fmt.Errorf("parameter %s=%s: not in [%d, %d]", p.name, p.value, minWindowBits, maxWindowBits)
	}
	return bits, nil
}

// isToken reports whether s is a non-empty RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
