package protocol

import (
	"strings"
	"testing"
)

func TestDecodeRefresh(t *testing.T) {
	cmd, err := DecodeCommand([]byte(`{"id":3,"op":"refresh","token":"abc","name":"ignored"}`))
	if err != nil || cmd.Op != OpRefresh || cmd.Token != "abc" || cmd.Name != "" {
		t.Fatalf("got %+v %v", cmd, err)
	}
	for _, in := range []string{`{"id":3,"op":"refresh"}`, `{"id":3,"op":"refresh","token":""}`} {
		cmd, err := DecodeCommand([]byte(in))
		if err == nil || err.Code != CodeBadRequest || !strings.Contains(err.Message, "token") || cmd.ID != 3 {
			t.Errorf("%s: got %+v %v, want bad_request about the token", in, cmd, err)
		}
	}
}

func TestServerCloseCodes(t *testing.T) {
	for code, want := range map[int]bool{
		1000: true, 1008: true, 4000: true, 4001: true, 4999: true,
		999: false, 1001: false, 1011: false, 3999: false, 5000: false, 0: false,
	} {
		if got := ValidServerCloseCode(code); got != want {
			t.Errorf("ValidServerCloseCode(%d) = %v", code, got)
		}
	}
	for code, want := range map[int]bool{4000: true, 4001: true, 4499: true, 1001: true, 4500: false, 4999: false, 1000: false, 1008: false} {
		if got := ReconnectAllowed(code); got != want {
			t.Errorf("ReconnectAllowed(%d) = %v", code, got)
		}
	}
	if err := CheckCloseReason(strings.Repeat("长", 41)); err != nil {
		t.Errorf("123 bytes: %v", err)
	}
	if err := CheckCloseReason(strings.Repeat("长", 41) + "x"); err == nil {
		t.Error("124 bytes accepted")
	}
	if err := CheckCloseReason("\xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}
