package handlers

import "testing"

func TestNegotiateDeflateAnswersRealOffers(t *testing.T) {
	const alone = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	const following = "permessage-deflate; client_no_context_takeover"
	const window = "; server_max_window_bits=15"
	cases := []struct {
		name, offer string
		// want is the answer where the server does not keep its context;
		// wantKeep where it may (/realtime with WS_COMPRESSION_CONTEXT).
		want, wantKeep string
	}{
		{"Chrome (and Safari 15+, Edge)", "permessage-deflate; client_max_window_bits", alone, following},
		{"Firefox", "permessage-deflate", alone, following},
		{"old Safari (x-webkit-deflate-frame only): declined", "x-webkit-deflate-frame", "", ""},
		{"no offer", "", "", ""},
		{"case and spacing", "  Permessage-Deflate ;Client_Max_Window_Bits ", alone, following},
		{"client window of 9 bits: inflated with a full one", "permessage-deflate; client_max_window_bits=9", alone, following},
		{"quoted value", `permessage-deflate; client_max_window_bits="10"`, alone, following},
		{"both no context takeover (Go's gorilla and fasthttp clients)",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", alone, alone},
		{"server_no_context_takeover alone", "permessage-deflate; server_no_context_takeover", alone, alone},
		{"client_no_context_takeover alone", "permessage-deflate; client_no_context_takeover", alone, following},
		{"server window 15: honoured and named", "permessage-deflate; server_max_window_bits=15", alone + window, following + window},
		{"server window 8: cannot be honoured", "permessage-deflate; server_max_window_bits=8", "", ""},
		{"server window 8, then a fallback offer", "permessage-deflate; server_max_window_bits=8, permessage-deflate", alone, following},
		{"Autobahn 13.x style list",
			"permessage-deflate; server_max_window_bits=9; client_max_window_bits, permessage-deflate; client_max_window_bits", alone, following},
		{"server window without a value", "permessage-deflate; server_max_window_bits", "", ""},
		{"window bits out of range", "permessage-deflate; client_max_window_bits=16", "", ""},
		{"window bits with a leading zero", "permessage-deflate; client_max_window_bits=09", "", ""},
		{"no_context_takeover with a value", "permessage-deflate; server_no_context_takeover=1", "", ""},
		{"duplicate parameter", "permessage-deflate; client_max_window_bits; client_max_window_bits", "", ""},
		{"unknown parameter", "permessage-deflate; mux", "", ""},
		{"unknown parameter, then a good offer", "permessage-deflate; mux, permessage-deflate; client_max_window_bits=15", alone, following},
		{"other extension first", "foo, permessage-deflate", alone, following},
	}
	modeOf := func(answer string) deflateMode {
		switch answer {
		case "":
			return noDeflate
		case following, following + window:
			return deflateFollowing
		}
		return deflateAlone
	}
	for _, tc := range cases {
		for keep, want := range map[bool]string{false: tc.want, true: tc.wantKeep} {
			got, mode := negotiateDeflate(tc.offer, keep)
			if got != want || mode != modeOf(want) {
				t.Errorf("%s (keep context %v): %q answered %q (mode %d), want %q", tc.name, keep, tc.offer, got, mode, want)
			}
		}
	}
}
