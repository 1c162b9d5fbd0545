package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/duplex/duplex/realtime/protocol"
)

// Bounds on what a backend's refusal may tell a client.
const (
	// maxHookCodeBytes bounds a deny's error code.
	maxHookCodeBytes = 32
	// maxHookMessageBytes bounds a deny's message.
	maxHookMessageBytes = 256
	// maxCloseReasonBytes is the room for a reason in a close frame
	// (125 bytes of control payload, 2 of them the code).
	maxCloseReasonBytes = 123
	// minHookCloseCode and maxHookCloseCode are the application's close
	// codes (RFC 6455 section 7.4.2), the only ones a hook may ask for.
	minHookCloseCode = 4000
	maxHookCloseCode = 4999
)

// defaultHookDenyMessage is the message of a deny that gives none.
const defaultHookDenyMessage = "refused by the server"

// Every check below makes an answer the client cannot be given (a user
// id the protocol cannot carry, an oversized info, a close code outside
// the application range) a failed call: unavailable, never a guess.

// checkVerdict checks a refusal and fills its defaults.
func checkVerdict(v HookVerdict) (HookVerdict, error) {
	switch {
	case v.Deny != nil && v.Disconnect != nil:
		return v, errors.New("both deny and disconnect")
	case v.Deny != nil:
		d := *v.Deny
		if d.Code == "" {
			d.Code = protocol.CodeForbidden
		}
		if !validHookCode(string(d.Code)) {
			return v, fmt.Errorf("error code %q is not 1-%d bytes of a-z 0-9 _ starting with a letter", d.Code, maxHookCodeBytes)
		}
		if d.Message == "" {
			d.Message = defaultHookDenyMessage
		}
		if err := checkShownText(d.Message, maxHookMessageBytes); err != nil {
			return v, fmt.Errorf("error message: %w", err)
		}
		v.Deny = &d
	case v.Disconnect != nil:
		d := *v.Disconnect
		if d.Code == 0 {
			d.Code = DefaultHookDisconnectCode
		}
		if d.Code < minHookCloseCode || d.Code > maxHookCloseCode {
			return v, fmt.Errorf("disconnect code %d is outside %d-%d", d.Code, minHookCloseCode, maxHookCloseCode)
		}
		if err := checkShownText(d.Reason, maxCloseReasonBytes); err != nil {
			return v, fmt.Errorf("disconnect reason: %w", err)
		}
		v.Disconnect = &d
	}
	return v, nil
}

func validHookCode(code string) bool {
	if code == "" || len(code) > maxHookCodeBytes || code[0] < 'a' || code[0] > 'z' {
		return false
	}
	for _, r := range code {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// checkShownText checks text a client is shown: valid UTF-8, no control
// characters, at most max bytes.
func checkShownText(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("contains control characters")
	}
	return nil
}

// checkConnectReply checks an allowed connect's identity: a user id that
// fits a user channel's name, a name CleanName accepts (in its cleaned
// form), and an info within bounds.
func checkConnectReply(r ConnectReply) (ConnectReply, error) {
	var err error
	if r.HookVerdict, err = checkVerdict(r.HookVerdict); err != nil || r.Deny != nil || r.Disconnect != nil {
		return r, err
	}
	if r.User != "" {
		if _, err := ParseChannel("user:" + r.User); err != nil {
			return r, errors.New("user id has characters outside A-Z a-z 0-9 _ . @ : - or is too long")
		}
	}
	if r.Name != "" {
		if r.Name, err = CleanName(r.Name); err != nil {
			return r, fmt.Errorf("name: %w", err)
		}
	}
	r.Info, err = checkHookJSON(r.Info, MaxHookInfoBytes, "info")
	return r, err
}

// checkSubscribeReply checks an allowed subscribe's channel info.
func checkSubscribeReply(r SubscribeReply) (SubscribeReply, error) {
	var err error
	if r.HookVerdict, err = checkVerdict(r.HookVerdict); err != nil || r.Deny != nil || r.Disconnect != nil {
		return r, err
	}
	r.Info, err = checkHookJSON(r.Info, MaxHookInfoBytes, "info")
	return r, err
}

// checkPublishReply checks an allowed publish's replaced data.
func checkPublishReply(r PublishReply) (PublishReply, error) {
	var err error
	if r.HookVerdict, err = checkVerdict(r.HookVerdict); err != nil || r.Deny != nil || r.Disconnect != nil {
		return r, err
	}
	if r.Data != nil && bytes.Equal(bytes.TrimSpace(r.Data), []byte("null")) {
		return r, errors.New("replaced data is null")
	}
	r.Data, err = checkHookJSON(r.Data, MaxHookResponseBytes, "data")
	return r, err
}

// checkHookJSON returns raw compacted, nil for nil or null; invalid JSON
// or a compact form over max bytes is an error.
func checkHookJSON(raw json.RawMessage, max int, what string) (json.RawMessage, error) {
	if raw == nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %w", what, err)
	}
	if b.Len() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", what, max)
	}
	return json.RawMessage(b.Bytes()), nil
}
