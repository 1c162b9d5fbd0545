package realtime

import (
	"context"
	"errors"
	"net/http"
)

// Emit is one batch of commands for an SSE stream, as POST
// /realtime/emit carries it: the session id of the stream, the token the
// request carried ("" for none) and the body, one socket frame's worth of
// '\n'-separated commands. A plain value; Body is not modified.
type Emit struct {
	Session string
	Token   string
	Body    []byte
}

// EmitHandler hands an emit to one of this node's streams and answers the
// HTTP status of the emit (204 accepted, 404, 410, 403...). It must be
// safe for concurrent use.
type EmitHandler func(e Emit) int

// EmitBroker is a Broker that also routes emits to the node that owns the
// stream: NATSBroker (core NATS request/reply under the prefix). On a
// broker that is not one, every stream is on this node.
//
// Concurrency: every method may be called from any goroutine.
// SetEmitHandler is called once, before RouteEmit.
type EmitBroker interface {
	Broker
	// SetEmitHandler makes h the destination of emits routed to node
	// (this node's id).
	SetEmitHandler(node string, h EmitHandler) error
	// RouteEmit hands e to node's handler and returns its status.
	// ErrNoNode means no node of that id answers; any other error means
	// the owner could not be reached in time.
	RouteEmit(ctx context.Context, node string, e Emit) (status int, err error)
}

// ErrNoNode is returned by RouteEmit when no node of the id is connected.
var ErrNoNode = errors.New("realtime: no such node")

// NodeID is this node's id, the prefix of its client ids.
func (h *Hub) NodeID() string { return h.nodeID }

// ServeEmits makes handle the destination of emits other nodes route to
// this node's streams. Without a broker that connects nodes it does
// nothing. Call it once.
func (h *Hub) ServeEmits(handle EmitHandler) error {
	if eb, ok := h.broker.(EmitBroker); ok {
		return eb.SetEmitHandler(h.nodeID, handle)
	}
	return nil
}

// RouteEmit hands e to the node that owns its stream and returns the
// emit's status there: 404 when the broker does not connect nodes or no
// node of that id answers (a stream on a node that is gone is gone).
//
// Errors: unavailable (the broker could not reach the node in time).
func (h *Hub) RouteEmit(ctx context.Context, node string, e Emit) (int, error) {
	eb, ok := h.broker.(EmitBroker)
	if !ok {
		return http.StatusNotFound, nil
	}
	status, err := eb.RouteEmit(ctx, node, e)
	if errors.Is(err, ErrNoNode) {
		return http.StatusNotFound, nil
	}
	if err != nil {
		return 0, h.unavailable("emit", "", err)
	}
	return status, nil
}
