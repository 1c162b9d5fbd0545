package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Op names a client command.
type Op string

// The client commands.
const (
	OpConnect     Op = "connect"
	OpSubscribe   Op = "subscribe"
	OpUnsubscribe Op = "unsubscribe"
	OpPublish     Op = "publish"
	OpPresence    Op = "presence"
	OpHistory     Op = "history"
	OpPing        Op = "ping"
	// OpRefresh replaces the connection's token with a newer one of the
	// same user (see refresh.go).
	OpRefresh Op = "refresh"
)

// Ops lists every op.
var Ops = []Op{OpConnect, OpSubscribe, OpUnsubscribe, OpPublish, OpPresence, OpHistory, OpPing, OpRefresh}

// Known reports whether op is one of Ops.
func (op Op) Known() bool {
	for _, k := range Ops {
		if op == k {
			return true
		}
	}
	return false
}

// needsChannel reports whether the op acts on one channel.
func (op Op) needsChannel() bool {
	switch op {
	case OpSubscribe, OpUnsubscribe, OpPublish, OpPresence, OpHistory:
		return true
	}
	return false
}

// Command is one decoded, validated client command. Only the fields that
// belong to Op are set; the others are zero.
type Command struct {
	// ID is the client's request id (>= 1), echoed in the reply.
	ID uint64
	Op Op
	// Channel is set for subscribe, unsubscribe, publish, presence, history.
	// Its name is not validated here (see realtime.ParseChannel).
	Channel string
	// Data is the compact JSON payload of a publish; never nil or "null".
	Data json.RawMessage
	// Recover, on subscribe, asks for the publications after that position.
	Recover *Position
	// Latest, on subscribe, asks for the newest Latest publications in
	// the reply (>= 1; 0: not asked). With Recover it applies only when
	// the gap cannot be recovered. Its upper bound is the namespace's
	// history size, which the hub checks.
	Latest int
	// Since and Limit, on history, select publications after Since (or the
	// latest ones when Since is nil), at most Limit (0: as many as kept).
	Since *Position
	Limit int
	// Token and Name, on connect, authenticate (token) or name a guest.
	// Token, on refresh, is the connection's new token (required).
	Token string
	Name  string
	// After, on presence, asks for the members whose client ids sort
	// after it: the next page, from the previous reply's next.
	After string
}

// rawCommand is the lenient shape json.Unmarshal fills; pointers tell a
// missing field from a zero one.
type rawCommand struct {
	ID      json.RawMessage `json:"id"`
	Op      *string         `json:"op"`
	Channel *string         `json:"channel"`
	Data    json.RawMessage `json:"data"`
	Recover *rawPosition    `json:"recover"`
	Latest  *int            `json:"latest"`
	Since   *rawPosition    `json:"since"`
	Limit   *int            `json:"limit"`
	Token   *string         `json:"token"`
	Name    *string         `json:"name"`
	After   *string         `json:"after"`
}

type rawPosition struct {
	Offset *uint64 `json:"offset"`
	Epoch  *string `json:"epoch"`
}

// DecodeCommand parses one command (one line of a frame). On failure it
// returns a *Error with CodeBadRequest and the command's id when the id
// could be read (0 otherwise), so the error reply can still be matched.
// It never panics, whatever the input.
func DecodeCommand(line []byte) (Command, *Error) {
	var raw rawCommand
	uerr := json.Unmarshal(line, &raw)
	id, idErr := parseID(raw.ID)
	if uerr != nil {
		cmd := Command{ID: id}
		if idErr != nil {
			cmd.ID = 0
		}
		return cmd, Errorf(CodeBadRequest, "malformed command: %s", shortErr(uerr))
	}
	if idErr != nil {
		return Command{}, idErr
	}
	cmd := Command{ID: id}
	if raw.Op == nil {
		return cmd, Errorf(CodeBadRequest, "missing field: op")
	}
	cmd.Op = Op(*raw.Op)
	if !cmd.Op.Known() {
		cmd.Op = ""
		return cmd, Errorf(CodeBadRequest, "unknown op %q", truncate(*raw.Op, 32))
	}
	if cmd.Op.needsChannel() {
		if raw.Channel == nil || *raw.Channel == "" {
			return cmd, Errorf(CodeBadRequest, "missing field: channel")
		}
		cmd.Channel = *raw.Channel
	}
	switch cmd.Op {
	case OpConnect:
		if raw.Token != nil {
			cmd.Token = *raw.Token
		}
		if raw.Name != nil {
			cmd.Name = *raw.Name
		}
		if cmd.Token != "" && cmd.Name != "" {
			return cmd, Errorf(CodeBadRequest, "connect takes a token or a name, not both")
		}
	case OpRefresh:
		if raw.Token == nil || *raw.Token == "" {
			return cmd, Errorf(CodeBadRequest, "missing field: token")
		}
		cmd.Token = *raw.Token
	case OpSubscribe:
		if raw.Recover != nil {
			p, err := raw.Recover.position("recover")
			if err != nil {
				return cmd, err
			}
			cmd.Recover = p
		}
		if raw.Latest != nil {
			if *raw.Latest < 1 {
				return cmd, Errorf(CodeBadRequest, "latest must be >= 1")
			}
			cmd.Latest = *raw.Latest
		}
	case OpPublish:
		if len(raw.Data) == 0 || bytes.Equal(raw.Data, []byte("null")) {
			return cmd, Errorf(CodeBadRequest, "missing field: data")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw.Data); err != nil {
			return cmd, Errorf(CodeBadRequest, "invalid data: %s", shortErr(err))
		}
		cmd.Data = buf.Bytes()
	case OpPresence:
		if raw.After != nil {
			cmd.After = *raw.After
		}
	case OpHistory:
		if raw.Since != nil {
			p, err := raw.Since.position("since")
			if err != nil {
				return cmd, err
			}
			cmd.Since = p
		}
		if raw.Limit != nil {
			if *raw.Limit < 0 {
				return cmd, Errorf(CodeBadRequest, "limit must be >= 0")
			}
			cmd.Limit = *raw.Limit
		}
	}
	return cmd, nil
}

func (p *rawPosition) position(field string) (*Position, *Error) {
	if p.Offset == nil {
		return nil, Errorf(CodeBadRequest, "missing field: %s.offset", field)
	}
	if p.Epoch == nil || *p.Epoch == "" {
		return nil, Errorf(CodeBadRequest, "missing field: %s.epoch", field)
	}
	return &Position{Offset: *p.Offset, Epoch: *p.Epoch}, nil
}

// parseID accepts only a plain positive integer that fits in uint64.
func parseID(raw json.RawMessage) (uint64, *Error) {
	if len(raw) == 0 {
		return 0, Errorf(CodeBadRequest, "missing field: id")
	}
	id, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || id == 0 {
		return 0, Errorf(CodeBadRequest, "id must be an integer >= 1")
	}
	return id, nil
}

// EncodeCommand encodes cmd as one line, the inverse of DecodeCommand for
// a valid command. Clients and tests use it.
func EncodeCommand(cmd Command) []byte {
	type wire struct {
		ID      uint64          `json:"id"`
		Op      Op              `json:"op"`
		Channel string          `json:"channel,omitempty"`
		Data    json.RawMessage `json:"data,omitempty"`
		Recover *Position       `json:"recover,omitempty"`
		Latest  int             `json:"latest,omitempty"`
		Since   *Position       `json:"since,omitempty"`
		Limit   int             `json:"limit,omitempty"`
		Token   string          `json:"token,omitempty"`
		Name    string          `json:"name,omitempty"`
		After   string          `json:"after,omitempty"`
	}
	b, err := marshal(wire(cmd))
	if err != nil {
		// Only invalid Data can fail; encode it as a string instead so the
		// result is still one valid JSON line.
		cmd.Data, _ = marshal(string(cmd.Data))
		b, _ = marshal(wire(cmd))
	}
	return b
}

func shortErr(err error) string { return truncate(err.Error(), 120) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
