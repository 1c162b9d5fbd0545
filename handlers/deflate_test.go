package handlers

import "testing"

func TestNegotiateDeflateAnswersRealOffers(t *testing.T) {
	const plain = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	const full = plain + "; server_max_window_bits=15"
	cases := []struct {
		name, offer, want string
	}{
		{"Chrome (and Safari 15+, Edge)", "permessage-deflate; client_max_window_bits", plain},
		{"Firefox", "permessage-deflate", plain},
		{"old Safari (x-webkit-deflate-frame only): declined", "x-webkit-deflate-frame", ""},
		{"no offer", "", ""},
		{"case and spacing", "  Permessage-Deflate ;Client_Max_Window_Bits ", plain},
		{"client window of 9 bits: inflated with a full one", "permessage-deflate; client_max_window_bits=9", plain},
		{"quoted value", `permessage-deflate; client_max_window_bits="10"`, plain},
		{"both no context takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", plain},
		{"server window 15: honoured and named", "permessage-deflate; server_max_window_bits=15", full},
		{"server window 8: cannot be honoured", "permessage-deflate; server_max_window_bits=8", ""},
		{"server window 8, then a fallback offer", "permessage-deflate; server_max_window_bits=8, permessage-deflate", plain},
		{"Autobahn 13.x style list",
			"permessage-deflate; server_max_window_bits=9; client_max_window_bits, permessage-deflate; client_max_window_bits", plain},
		{"server window without a value", "permessage-deflate; server_max_window_bits", ""},
		{"window bits out of range", "permessage-deflate; client_max_window_bits=16", ""},
		{"window bits with a leading zero", "permessage-deflate; client_max_window_bits=09", ""},
		{"no_context_takeover with a value", "permessage-deflate; server_no_context_takeover=1", ""},
		{"duplicate parameter", "permessage-deflate; client_max_window_bits; client_max_window_bits", ""},
		{"unknown parameter", "permessage-deflate; mux", ""},
		{"unknown parameter, then a good offer", "permessage-deflate; mux, permessage-deflate; client_max_window_bits=15", plain},
		{"other extension first", "foo, permessage-deflate", plain},
	}
	for _, tc := range cases {
		if got := negotiateDeflate(tc.offer); got != tc.want {
			t.Errorf("%s: %q answered %q, want %q", tc.name, tc.offer, got, tc.want)
		}
	}
}
