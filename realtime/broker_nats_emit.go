package realtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

var _ EmitBroker = (*NATSBroker)(nil)

// Emit routing, core NATS request/reply (at most once, nothing stored):
//
//	p.ctl.emit.<node>   an emit for a stream of node: the body as data,
//	                    the session id and token in headers; the node
//	                    answers the HTTP status as decimal text
func (b *NATSBroker) emitSubject(node string) string { return b.opts.Prefix + ".ctl.emit." + node }

// Headers of a routed emit.
const (
	emitSessionHeader = "Duplex-Session"
	emitTokenHeader   = "Duplex-Token"
)

// emitWorkers is how many routed emits one node handles at once: as many
// subscriptions in one queue group, each with the library's goroutine, so
// one emit that waits on a hook does not hold up every other stream's.
// One stream's emits come one at a time, so they stay in order.
const emitWorkers = 4

// SetEmitHandler implements EmitBroker: it subscribes this node to its
// emit subject. The subscriptions belong to the connection, as the
// control subjects' do.
func (b *NATSBroker) SetEmitHandler(node string, h EmitHandler) error {
	if !validNodeToken(node) {
		return fmt.Errorf("nats: node id %q is not one subject token", node)
	}
	subject := b.emitSubject(node)
	for range emitWorkers {
		sub, err := b.nc.QueueSubscribe(subject, "emit", func(m *nats.Msg) {
			b.guard("emit", func() {
				status := h(Emit{Session: m.Header.Get(emitSessionHeader), Token: m.Header.Get(emitTokenHeader), Body: m.Data})
				if err := m.Respond([]byte(strconv.Itoa(status))); err != nil {
					b.log.Warn("answering a routed emit failed", "err", err)
				}
			})
		})
		if err != nil {
			return fmt.Errorf("nats: subscribe %s: %w", subject, err)
		}
		b.keepNodeSub(sub)
	}
	if err := b.nc.FlushTimeout(b.opts.PublishTimeout); err != nil {
		b.log.Warn("emit subscriptions not confirmed yet", "err", err)
	}
	return nil
}

// RouteEmit implements EmitBroker: one request to the node's subject.
// No subscriber (the node is gone, or never was) is ErrNoNode.
func (b *NATSBroker) RouteEmit(ctx context.Context, node string, e Emit) (int, error) {
	if !validNodeToken(node) {
		return 0, ErrNoNode
	}
	if err := b.connected(); err != nil {
		return 0, err
	}
	msg := nats.NewMsg(b.emitSubject(node))
	msg.Header.Set(emitSessionHeader, e.Session)
	if e.Token != "" {
		msg.Header.Set(emitTokenHeader, e.Token)
	}
	msg.Data = e.Body
	reply, err := b.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return 0, ErrNoNode
	}
	if err != nil {
		return 0, fmt.Errorf("nats: route emit: %w", err)
	}
	status, err := strconv.Atoi(string(reply.Data))
	if err != nil || status < 100 || status > 599 {
		return 0, fmt.Errorf("nats: route emit: undecodable answer %q", reply.Data)
	}
	return status, nil
}

// validNodeToken reports whether node can be one token of a subject.
func validNodeToken(node string) bool {
	return node != "" && !strings.ContainsAny(node, ".*> \t\r\n")
}
