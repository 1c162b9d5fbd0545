package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

var _ ControlBroker = (*NATSBroker)(nil)

// Control subjects, core NATS (at most once, nothing stored):
//
//	p.ctl.cmd    control commands (ControlCommand JSON) for every node
//	p.ctl.info   node-information requests; every node answers the
//	             request's reply subject with its NodeInfo JSON
func (b *NATSBroker) controlSubject() string { return b.opts.Prefix + ".ctl.cmd" }
func (b *NATSBroker) infoSubject() string    { return b.opts.Prefix + ".ctl.info" }

// SetControlHandler implements ControlBroker: it subscribes this node to
// the control subjects. The subscriptions belong to the connection: the
// client library restores them after a reconnect, and Close ends them.
// Their callbacks run on the library's goroutine of each subscription,
// one message at a time.
func (b *NATSBroker) SetControlHandler(h ControlHandler) error {
	sub, err := b.nc.Subscribe(b.controlSubject(), func(m *nats.Msg) {
		cmd, err := decodeControl(m.Data)
		if err != nil {
			b.log.Warn("undecodable control command", "err", err)
			return
		}
		b.guard("control command", func() { h.HandleControl(cmd) })
	})
	if err != nil {
		return fmt.Errorf("nats: subscribe %s: %w", b.controlSubject(), err)
	}
	b.keepNodeSub(sub)
	sub, err = b.nc.Subscribe(b.infoSubject(), func(m *nats.Msg) {
		b.guard("node info", func() {
			data, _ := json.Marshal(h.NodeInfo()) // strings and numbers: cannot fail
			if err := m.Respond(data); err != nil {
				b.log.Warn("answering a node-information request failed", "err", err)
			}
		})
	})
	if err != nil {
		return fmt.Errorf("nats: subscribe %s: %w", b.infoSubject(), err)
	}
	b.keepNodeSub(sub)
	// The server knows the subscriptions once this returns, so a command
	// published right after reaches this node too. When NATS is away,
	// the library sends them on reconnect.
	if err := b.nc.FlushTimeout(b.opts.PublishTimeout); err != nil {
		b.log.Warn("control subscriptions not confirmed yet", "err", err)
	}
	return nil
}

// guard runs f, turning a panic into a log line: a control message must
// not take the process down.
func (b *NATSBroker) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("panic while handling a NATS message", "what", what, "panic", r)
		}
	}()
	f()
}

// PublishControl implements ControlBroker: one core NATS message, and a
// flush so that it returns once the server has it (a node disconnected
// from NATS at that moment misses it).
func (b *NATSBroker) PublishControl(ctx context.Context, cmd ControlCommand) error {
	if err := b.connected(); err != nil {
		return err
	}
	if err := b.nc.Publish(b.controlSubject(), encodeControl(cmd)); err != nil {
		return fmt.Errorf("nats: publish control: %w", err)
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats: flush control: %w", err)
	}
	return nil
}

// GatherNodeInfo implements ControlBroker: one request on the info
// subject, and every answer that comes within wait (or before ctx ends).
// The number of nodes is not known, so it always waits the whole time.
func (b *NATSBroker) GatherNodeInfo(ctx context.Context, wait time.Duration) ([]NodeInfo, error) {
	if err := b.connected(); err != nil {
		return nil, err
	}
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("nats: node info: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The subscription goes to the server before the request, on the
	// same connection, so no answer can come before it.
	if err := b.nc.PublishRequest(b.infoSubject(), inbox, nil); err != nil {
		return nil, fmt.Errorf("nats: node info: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out []NodeInfo
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return out, nil
			}
			return nil, fmt.Errorf("nats: node info: %w", err)
		}
		var info NodeInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			b.log.Warn("undecodable node information", "err", err)
			continue
		}
		out = append(out, info)
	}
}
