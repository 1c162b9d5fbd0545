package realtime

import (
	"context"
	"time"
)

var _ ControlBroker = (*MemoryBroker)(nil)

// SetControlHandler implements ControlBroker.
func (b *MemoryBroker) SetControlHandler(h ControlHandler) error {
	b.control.Store(&h)
	return nil
}

// PublishControl implements ControlBroker: there is one node, so the
// command is handled before it returns.
func (b *MemoryBroker) PublishControl(_ context.Context, cmd ControlCommand) error {
	if p := b.control.Load(); p != nil {
		(*p).HandleControl(cmd)
	}
	return nil
}

// GatherNodeInfo implements ControlBroker: this node only, at once.
func (b *MemoryBroker) GatherNodeInfo(context.Context, time.Duration) ([]NodeInfo, error) {
	if p := b.control.Load(); p != nil {
		return []NodeInfo{(*p).NodeInfo()}, nil
	}
	return nil, nil
}
