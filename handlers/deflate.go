package handlers

import (
	"strconv"
	"strings"
)

// permessage-deflate negotiation (RFC 7692 section 5 and 7.1). duplex owns
// it rather than letting fasthttp/websocket answer: that library accepts
// any parameters, server_max_window_bits=8 included, which a compressor
// with a 32 KiB window cannot honour.
//
// The answer always asks the client for client_no_context_takeover, so
// the server inflates every message on its own and keeps no decompressor
// per connection. It leaves the server its own context when the client
// allows it (browsers do: they offer no server_no_context_takeover) and
// the socket fans out shared messages (WS_COMPRESSION_CONTEXT, /realtime):
// a publication may then be compressed against the channel's previous
// one, once for all the subscribers that got that one last
// (wsconn.SharedMessage). The server still keeps no compressor per
// connection. Everywhere else it answers server_no_context_takeover too,
// which lets the client drop its window between messages.

// deflateMode is what a connection negotiated.
type deflateMode int

const (
	noDeflate        deflateMode = iota // declined, or not offered
	deflateAlone                        // every message compressed on its own
	deflateFollowing                    // the server kept its context

	deflateModes = iota // how many there are
)

// deflateExtension is the extension's name in Sec-WebSocket-Extensions.
const deflateExtension = "permessage-deflate"

// The responses to an accepted offer: the server keeps its context, or
// not.
const (
	deflateAnswerFollowing = deflateExtension + "; client_no_context_takeover"
	deflateAnswerAlone     = deflateExtension + "; server_no_context_takeover; client_no_context_takeover"
)

// maxWindowBits is the LZ77 window duplex compresses with (32 KiB), and
// the largest the RFC allows; minWindowBits is the smallest it allows.
const (
	maxWindowBits = 15
	minWindowBits = 8
)

// negotiateDeflate picks the first permessage-deflate offer of a
// Sec-WebSocket-Extensions request header that duplex can honour and
// returns the response header's value for it and the mode it sets, or ""
// and noDeflate to decline them all. An offer is declined for an unknown
// or repeated parameter, a malformed value, or server_max_window_bits
// below 15 (duplex compresses with a full window); client_max_window_bits
// of any valid size is fine, since duplex inflates with a full window.
// Offers of other extensions are ignored. With keepContext, an offer
// without server_no_context_takeover leaves the server its context
// (deflateFollowing). It is a pure function.
func negotiateDeflate(header string, keepContext bool) (string, deflateMode) {
	for offer := range strings.SplitSeq(header, ",") {
		params := strings.Split(offer, ";")
		if !strings.EqualFold(strings.TrimSpace(params[0]), deflateExtension) {
			continue
		}
		if answer, mode, ok := acceptDeflateOffer(params[1:], keepContext); ok {
			return answer, mode
		}
	}
	return "", noDeflate
}

// acceptDeflateOffer judges one offer's parameters and returns the answer
// to it.
func acceptDeflateOffer(params []string, keepContext bool) (answer string, mode deflateMode, ok bool) {
	seen := make(map[string]bool, len(params))
	var window string
	for _, p := range params {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.Trim(strings.TrimSpace(value), `"`) // a quoted value is allowed (section 7.1)
		if seen[name] {
			return "", noDeflate, false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return "", noDeflate, false
			}
		case "server_max_window_bits":
			// The server must not use a larger window than this, and
			// says so in its answer (section 7.1.2.1).
			if bits, valid := windowBits(value, hasValue); !valid || bits != maxWindowBits {
				return "", noDeflate, false
			}
			window = "; server_max_window_bits=15"
		case "client_max_window_bits":
			// Optional value: the client may shrink its window; any is
			// inflated, so the answer need not name one.
			if hasValue {
				if _, valid := windowBits(value, true); !valid {
					return "", noDeflate, false
				}
			}
		default:
			return "", noDeflate, false
		}
	}
	if keepContext && !seen["server_no_context_takeover"] {
		return deflateAnswerFollowing + window, deflateFollowing, true
	}
	return deflateAnswerAlone + window, deflateAlone, true
}

// windowBits parses a window size parameter's value: an integer from 8 to
// 15 without a sign or leading zero.
func windowBits(value string, hasValue bool) (int, bool) {
	if !hasValue || value == "" || value[0] < '1' || value[0] > '9' {
		return 0, false
	}
	bits, err := strconv.Atoi(value)
	if err != nil || bits < minWindowBits || bits > maxWindowBits {
		return 0, false
	}
	return bits, true
}
