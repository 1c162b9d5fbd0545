package realtime

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/duplex/duplex/realtime/protocol"
)

// The JSON a hook call sends and receives (docs/protocol.md, "Backend
// hooks"). Unknown fields in a reply are ignored, so a backend may send
// more than the server reads; anything else is checked by the client
// (hooks_check.go) before it is used.

// wireClient is who a subscribe or publish call is about.
type wireClient struct {
	Client string          `json:"client"`
	User   string          `json:"user,omitempty"`
	Name   string          `json:"name,omitempty"`
	Info   json.RawMessage `json:"info,omitempty"`
}

func wireClientOf(info ClientInfo) wireClient {
	return wireClient{Client: info.Client, User: info.User, Name: info.Name, Info: info.ConnInfo}
}

type wireConnectRequest struct {
	Client  string            `json:"client"`
	Token   string            `json:"token,omitempty"`
	Name    string            `json:"name,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Cookies map[string]string `json:"cookies,omitempty"`
}

func wireConnectRequestOf(r ConnectRequest) wireConnectRequest {
	return wireConnectRequest{Client: r.Client, Token: r.Token, Name: r.Name, IP: r.IP, Headers: r.Headers, Cookies: r.Cookies}
}

type wireSubscribeRequest struct {
	wireClient
	Channel string `json:"channel"`
}

type wirePublishRequest struct {
	wireClient
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

type wireConnectResult struct {
	User string          `json:"user"`
	Name string          `json:"name"`
	Info json.RawMessage `json:"info"`
}

type wireSubscribeResult struct {
	Info json.RawMessage `json:"info"`
}

type wirePublishResult struct {
	Data json.RawMessage `json:"data"`
}

// wireReply is every hook's answer: exactly one of its fields.
type wireReply struct {
	Result     json.RawMessage `json:"result"`
	Error      *wireError      `json:"error"`
	Disconnect *wireDisconnect `json:"disconnect"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type wireDisconnect struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// decodeHookReply reads one reply from raw: a refusal goes into the
// verdict, a result into result (an object; {} allows with nothing more).
// Anything else, trailing data included, wraps errHookGarbage.
func decodeHookReply(raw []byte, result any) (HookVerdict, error) {
	var r wireReply
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&r); err != nil {
		return HookVerdict{}, fmt.Errorf("%w: %w", errHookGarbage, err)
	}
	if dec.More() {
		return HookVerdict{}, fmt.Errorf("%w: data after the reply", errHookGarbage)
	}
	isResult := len(r.Result) > 0 && !bytes.Equal(r.Result, []byte("null"))
	n := 0
	for _, set := range []bool{isResult, r.Error != nil, r.Disconnect != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return HookVerdict{}, fmt.Errorf("%w: want exactly one of result, error and disconnect, got %d", errHookGarbage, n)
	}
	switch {
	case r.Error != nil:
		return HookVerdict{Deny: &Error{Code: protocol.Code(r.Error.Code), Message: r.Error.Message}}, nil
	case r.Disconnect != nil:
		return HookVerdict{Disconnect: &HookDisconnect{Code: r.Disconnect.Code, Reason: r.Disconnect.Reason}}, nil
	}
	if r.Result[0] != '{' {
		return HookVerdict{}, fmt.Errorf("%w: result is not an object", errHookGarbage)
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return HookVerdict{}, fmt.Errorf("%w: result: %w", errHookGarbage, err)
	}
	return HookVerdict{}, nil
}
