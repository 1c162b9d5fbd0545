package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/duplex/duplex/realtime/protocol"
)

// Each call below is sent on the current connection; while the client is
// disconnected it waits for the next one, within ctx. It returns the
// server's *Error when refused, an error wrapping ErrDisconnected when the
// connection ended before the reply (the command may have been carried
// out), ctx's error, or ErrClosed. All are safe for concurrent use.

// Publish publishes data to channel and returns the new publication's
// position. data is a json.RawMessage or []byte sent as is (it must be
// JSON), or any value, encoded without HTML escaping so subscribers get
// the bytes as written. If this client is subscribed, the publication
// also comes as a push (usually before the reply); the Subscription
// delivers it once.
func (c *Client) Publish(ctx context.Context, channel string, data any) (protocol.PublishResult, error) {
	raw, err := encodeData(data)
	if err != nil {
		return protocol.PublishResult{}, fmt.Errorf("duplex: publish %s: %w", channel, err)
	}
	var r protocol.PublishResult
	err = c.call(ctx, protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: raw}, &r)
	return r, err
}

func encodeData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case json.RawMessage:
		return d, nil
	case []byte:
		return d, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// Presence returns who is in channel. A member list too large for one
// reply is fetched page by page and returned whole (More false); members
// who join or leave between pages may be missed or seen on both sides
// (docs/protocol.md, presence).
func (c *Client) Presence(ctx context.Context, channel string) (protocol.PresenceResult, error) {
	var all protocol.PresenceResult
	after := ""
	for {
		var page protocol.PresenceResult
		if err := c.call(ctx, protocol.Command{Op: protocol.OpPresence, Channel: channel, After: after}, &page); err != nil {
			return all, err
		}
		all.Count = page.Count
		if len(page.Clients) > 0 && all.Clients == nil {
			all.Clients = make(map[string]protocol.ClientInfo, page.Count)
		}
		for id, info := range page.Clients {
			all.Clients[id] = info
		}
		if !page.More || page.Next == "" || page.Next == after {
			return all, nil
		}
		after = page.Next
	}
}

// HistoryOptions selects publications: the newest Limit (0: all kept), or
// with Since those after it, at most Limit.
type HistoryOptions struct {
	Limit int
	Since *protocol.Position
}

// History returns kept publications of channel, oldest first, and the
// channel's position. A selection too large for one reply (256 KiB) is
// fetched page by page and returned whole (More false). A Since that is
// no longer kept is an *Error with protocol.CodeNotFound: reload without
// Since.
func (c *Client) History(ctx context.Context, channel string, opts HistoryOptions) (protocol.HistoryResult, error) {
	var all protocol.HistoryResult
	since, limit := opts.Since, opts.Limit
	for {
		var page protocol.HistoryResult
		cmd := protocol.Command{Op: protocol.OpHistory, Channel: channel, Since: since, Limit: limit}
		if err := c.call(ctx, cmd, &page); err != nil {
			return all, err
		}
		all.Publications = append(all.Publications, page.Publications...)
		all.Offset, all.Epoch = page.Offset, page.Epoch
		left := 1
		if opts.Limit > 0 {
			left = opts.Limit - len(all.Publications)
		}
		if !page.More || len(page.Publications) == 0 || left <= 0 {
			if all.Publications == nil {
				all.Publications = []protocol.Publication{}
			}
			return all, nil
		}
		last := page.Publications[len(page.Publications)-1]
		since = &protocol.Position{Offset: last.Offset, Epoch: page.Epoch}
		if opts.Limit > 0 {
			limit = left
		}
	}
}

// Ping asks the server for an empty answer.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, protocol.Command{Op: protocol.OpPing}, nil)
}

// Call sends any command on the current connection (waiting for one
// within ctx) and returns its raw result: for ops this package has no
// method for yet.
func (c *Client) Call(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	conn, err := c.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("duplex: %s: %w", cmd.Op, err)
	}
	return conn.Call(ctx, cmd)
}
