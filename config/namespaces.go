package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/duplex/duplex/realtime"
)

// namespaceJSON is one namespace in the NAMESPACES setting. Every field is
// optional: a namespace that a feature brings keeps the feature's defaults
// for what is not given, and a new namespace starts from nothing (no history, no presence,
// server-only publish, disconnect slow consumers).
type namespaceJSON struct {
	HistorySize *int    `json:"history_size"`
	HistoryTTL  *string `json:"history_ttl"`
	Presence    *string `json:"presence"` // off, count or members
	JoinLeave   *bool   `json:"join_leave"`
	// JoinLeaveTick ("200ms") and JoinLeaveMaxMembers: see
	// realtime.NamespaceOptions.
	JoinLeaveTick       *string  `json:"join_leave_tick"`
	JoinLeaveMaxMembers *int     `json:"join_leave_max_members"`
	ClientPublish       *bool    `json:"client_publish"`
	PublishRate         *float64 `json:"publish_rate"`
	PublishBurst        *int     `json:"publish_burst"`
	UserChannel         *bool    `json:"user_channel"`
	SlowPolicy          *string  `json:"slow_policy"` // disconnect or drop-oldest
	// SubscribeHook and PublishHook send the namespace's subscribes and
	// client publications to the backend's hooks (HOOK_SUBSCRIBE_URL,
	// HOOK_PUBLISH_URL).
	SubscribeHook *bool `json:"subscribe_hook"`
	PublishHook   *bool `json:"publish_hook"`
	// FlowTick ("100ms"; "0s" turns flow control off) and FlowBudget:
	// see realtime.NamespaceOptions.
	FlowTick   *string `json:"flow_tick"`
	FlowBudget *int    `json:"flow_budget"`
}

var presenceModes = map[string]realtime.PresenceMode{
	"off": realtime.PresenceOff, "count": realtime.PresenceCount, "members": realtime.PresenceMembers,
}

// parseNamespaces merges a JSON object of namespace options over the
// features' defaults, for example
// {"chat":{"history_size":500,"history_ttl":"1h"},"game":{"client_publish":true}}.
func parseNamespaces(v string, defaults realtime.Namespaces) (realtime.Namespaces, error) {
	var in map[string]namespaceJSON
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("not a JSON object of namespace options: %w", err)
	}
	out := make(realtime.Namespaces, len(defaults)+len(in))
	for name, o := range defaults {
		out[name] = o
	}
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o, err := in[name].apply(out[name])
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", name, err)
		}
		out[name] = o
	}
	return out, nil
}

func (j namespaceJSON) apply(o realtime.NamespaceOptions) (realtime.NamespaceOptions, error) {
	setIf(&o.HistorySize, j.HistorySize)
	setIf(&o.JoinLeave, j.JoinLeave)
	setIf(&o.ClientPublish, j.ClientPublish)
	setIf(&o.PublishRate, j.PublishRate)
	setIf(&o.PublishBurst, j.PublishBurst)
	setIf(&o.UserChannel, j.UserChannel)
	setIf(&o.SubscribeHook, j.SubscribeHook)
	setIf(&o.PublishHook, j.PublishHook)
	if j.HistoryTTL != nil {
		d, err := time.ParseDuration(*j.HistoryTTL)
		if err != nil {
			return o, fmt.Errorf("history_ttl: %w", err)
		}
		o.HistoryTTL = d
	}
	if j.JoinLeaveTick != nil {
		d, err := time.ParseDuration(*j.JoinLeaveTick)
		if err != nil {
			return o, fmt.Errorf("join_leave_tick: %w", err)
		}
		if d <= 0 {
			return o, fmt.Errorf("join_leave_tick must be > 0, got %q", *j.JoinLeaveTick)
		}
		o.JoinLeaveTick = d
	}
	if j.JoinLeaveMaxMembers != nil {
		if *j.JoinLeaveMaxMembers < 1 {
			return o, fmt.Errorf("join_leave_max_members must be >= 1, got %d", *j.JoinLeaveMaxMembers)
		}
		o.JoinLeaveMaxMembers = *j.JoinLeaveMaxMembers
	}
	if j.FlowTick != nil {
		d, err := time.ParseDuration(*j.FlowTick)
		if err != nil {
			return o, fmt.Errorf("flow_tick: %w", err)
		}
		if d < 0 {
			return o, fmt.Errorf("flow_tick must be >= 0 (0 turns flow control off), got %q", *j.FlowTick)
		}
		o.FlowTick = d
	}
	if j.FlowBudget != nil {
		if *j.FlowBudget < 1 {
			return o, fmt.Errorf("flow_budget must be >= 1, got %d", *j.FlowBudget)
		}
		o.FlowBudget = *j.FlowBudget
	}
	if j.Presence != nil {
		mode, ok := presenceModes[*j.Presence]
		if !ok {
			return o, fmt.Errorf("presence must be off, count or members, got %q", *j.Presence)
		}
		o.Presence = mode
	}
	// A namespace that turns join/leave on gets the defaults the hub would
	// use, so the start-up log shows them.
	if o.JoinLeave && o.JoinLeaveTick == 0 {
		o.JoinLeaveTick = realtime.DefaultJoinLeaveTick
	}
	if o.JoinLeave && o.JoinLeaveMaxMembers == 0 {
		o.JoinLeaveMaxMembers = realtime.DefaultJoinLeaveMaxMembers
	}
	// Likewise for flow control.
	if o.FlowTick > 0 && o.FlowBudget == 0 {
		o.FlowBudget = realtime.DefaultFlowBudget
	}
	if j.SlowPolicy != nil {
		p, err := realtime.ParseSlowPolicy(*j.SlowPolicy)
		if err != nil {
			return o, err
		}
		o.SlowPolicy = p
	}
	return o, nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// describeNamespaces is the NAMESPACES line of the start-up log: each
// namespace's effective options, in name order.
func describeNamespaces(ns realtime.Namespaces) string {
	names := make([]string, 0, len(ns))
	for name := range ns {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for i, name := range names {
		o := ns[name]
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: history=%d/%s presence=%v join_leave=%v", name, o.HistorySize, o.HistoryTTL, presenceName(o.Presence), o.JoinLeave)
		if o.JoinLeave {
			fmt.Fprintf(&b, " join_leave_tick=%s join_leave_max_members=%d", o.JoinLeaveTick, o.JoinLeaveMaxMembers)
		}
		fmt.Fprintf(&b, " client_publish=%v rate=%g/%d user_only=%v slow=%s",
			o.ClientPublish, o.PublishRate, o.PublishBurst, o.UserChannel, o.SlowPolicy)
		if o.SubscribeHook || o.PublishHook {
			fmt.Fprintf(&b, " subscribe_hook=%v publish_hook=%v", o.SubscribeHook, o.PublishHook)
		}
		if o.FlowTick > 0 {
			fmt.Fprintf(&b, " flow_tick=%s flow_budget=%d", o.FlowTick, o.FlowBudget)
		}
	}
	return b.String()
}

func presenceName(m realtime.PresenceMode) string {
	for name, mode := range presenceModes {
		if mode == m {
			return name
		}
	}
	return "unknown"
}
