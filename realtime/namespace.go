package realtime

import (
	"fmt"
	"sort"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// PresenceMode says what a namespace keeps about who is subscribed.
type PresenceMode uint8

const (
	// PresenceOff keeps nothing; the presence op answers not_found.
	PresenceOff PresenceMode = iota
	// PresenceCount keeps an online count only (clients see no member list).
	PresenceCount
	// PresenceMembers keeps the member list (client id → info).
	PresenceMembers
)

// NamespaceOptions are the rules of one namespace. A value is immutable
// once handed to NewHub and may be read from any goroutine.
type NamespaceOptions struct {
	// HistorySize is how many recent publications a channel keeps for
	// history and recovery; 0 turns history off.
	HistorySize int
	// HistoryTTL is how long a publication stays in history; required when
	// HistorySize > 0.
	HistoryTTL time.Duration
	// Presence selects what is kept about subscribers.
	Presence PresenceMode
	// JoinLeave pushes join and leave events to subscribers. It needs
	// Presence == PresenceMembers.
	JoinLeave bool
	// JoinLeaveTick is how long a channel's join and leave events are
	// gathered before they go out, as one frame for every subscriber
	// (0: DefaultJoinLeaveTick; 1 ms to 10 s).
	JoinLeaveTick time.Duration
	// JoinLeaveMaxMembers is the member count above which a channel sends
	// a presence_count event per tick instead of each join and leave
	// (0: DefaultJoinLeaveMaxMembers).
	JoinLeaveMaxMembers int
	// ClientPublish lets clients publish; otherwise only the server does.
	ClientPublish bool
	// PublishRate and PublishBurst limit client publications per
	// connection in this namespace (token bucket); rate 0 means no limit.
	PublishRate  float64
	PublishBurst int
	// UserChannel restricts subscribing (and presence/history) to the
	// authenticated user whose id is the channel's rest ("user:42").
	UserChannel bool
	// SlowPolicy applies when a subscriber's queue is full.
	SlowPolicy SlowPolicy
	// SubscribeHook asks the backend's subscribe hook before every
	// subscribe (HubConfig.Hooks.Subscribe must be set).
	SubscribeHook bool
	// PublishHook asks the backend's publish hook before every client
	// publication, which it may refuse or replace; it needs
	// ClientPublish (and HubConfig.Hooks.Publish).
	PublishHook bool
	// FlowTick turns flow control on (0: off): a channel's publications
	// are gathered for one tick and go to every subscriber as one tick
	// frame, encoded once, sampled down to FlowBudget when there are more
	// (flow.go). A subscriber too slow for a tick frame gets the next one
	// instead, with a count of what it missed, and is never disconnected
	// for it. 10 ms to 10 s.
	FlowTick time.Duration
	// FlowBudget is how many publications a tick frame shows at most,
	// besides priority ones, which are never sampled out
	// (0: DefaultFlowBudget). Only with FlowTick.
	FlowBudget int
}

// Namespaces maps a namespace name to its options. A channel whose
// namespace is not in the map is rejected with bad_channel. The core
// defines none: the server's features bring theirs (with their default
// options) and the config package merges NAMESPACES over them. The hub
// never modifies it, so it may be shared once built.
type Namespaces map[string]NamespaceOptions

// Validate reports the first inconsistent option, naming the namespace.
func (n Namespaces) Validate() error {
	names := make([]string, 0, len(n))
	for name := range n {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o := n[name]
		switch {
		case !validNamespaceName(name):
			return fmt.Errorf("namespace %q: name must be 1-%d bytes of a-z 0-9 _ -", name, maxNamespaceLength)
		case o.HistorySize < 0:
			return fmt.Errorf("namespace %q: history size must be >= 0", name)
		case o.HistorySize > 0 && o.HistoryTTL <= 0:
			return fmt.Errorf("namespace %q: history needs a TTL > 0", name)
		case o.JoinLeave && o.Presence != PresenceMembers:
			return fmt.Errorf("namespace %q: join/leave needs member presence", name)
		case o.JoinLeaveTick < 0 || o.JoinLeaveTick > 0 && (o.JoinLeaveTick < minJoinLeaveTick || o.JoinLeaveTick > maxJoinLeaveTick):
			return fmt.Errorf("namespace %q: join/leave tick must be between %s and %s", name, minJoinLeaveTick, maxJoinLeaveTick)
		case o.JoinLeaveMaxMembers < 0:
			return fmt.Errorf("namespace %q: join/leave max members must be >= 0", name)
		case o.PublishRate < 0:
			return fmt.Errorf("namespace %q: publish rate must be >= 0", name)
		case o.PublishRate > 0 && o.PublishBurst < 1:
			return fmt.Errorf("namespace %q: publish burst must be >= 1 when a rate is set", name)
		case o.PublishHook && !o.ClientPublish:
			return fmt.Errorf("namespace %q: the publish hook needs client publish", name)
		case o.FlowTick < 0 || o.FlowTick > 0 && (o.FlowTick < minFlowTick || o.FlowTick > maxFlowTick):
			return fmt.Errorf("namespace %q: flow tick must be between %s and %s", name, minFlowTick, maxFlowTick)
		case o.FlowBudget < 0 || o.FlowBudget > maxFlowBudget:
			return fmt.Errorf("namespace %q: flow budget must be between 0 and %d", name, maxFlowBudget)
		case o.SlowPolicy != PolicyDisconnect && o.SlowPolicy != PolicyDropOldest:
			return fmt.Errorf("namespace %q: unknown slow-consumer policy %d", name, o.SlowPolicy)
		}
	}
	return nil
}

// Lookup parses a channel name and finds its namespace. Errors are *Error
// with code bad_channel.
func (n Namespaces) Lookup(name string) (Channel, NamespaceOptions, error) {
	ch, err := ParseChannel(name)
	if err != nil {
		return Channel{}, NamespaceOptions{}, err
	}
	o, ok := n[ch.Namespace]
	if !ok {
		return Channel{}, NamespaceOptions{}, protocol.Errorf(protocol.CodeBadChannel, "unknown namespace %q", ch.Namespace)
	}
	return ch, o, nil
}

// ParseSlowPolicy parses "disconnect" or "drop-oldest" (for config).
func ParseSlowPolicy(s string) (SlowPolicy, error) {
	switch s {
	case "disconnect":
		return PolicyDisconnect, nil
	case "drop-oldest":
		return PolicyDropOldest, nil
	}
	return 0, fmt.Errorf("unknown slow-consumer policy %q (want disconnect or drop-oldest)", s)
}
