// Package realtime is the core of duplex's real-time channels: channel
// names and namespaces, the Hub that fans publications out to local
// subscribers, the Broker boundary (memory now, NATS later), presence,
// history with recovery, and the per-connection protocol state machine
// (Client).
//
// It imports neither Fiber nor wsconn: a connection is anything that
// implements Subscriber, and the transport feeds a Client the frames it
// reads. The wire format lives in the protocol subpackage.
//
// Every frame sent to a connection, replies and pushes alike, goes
// through Subscriber.Enqueue, so one connection's queue is the single
// ordered stream the client sees.
package realtime

import "github.com/duplex/duplex/realtime/protocol"

// Wire types shared with the protocol package.
type (
	// StreamPosition is a channel stream position: offset plus epoch.
	StreamPosition = protocol.Position
	// ClientInfo identifies a publisher or a presence entry.
	ClientInfo = protocol.ClientInfo
	// Publication is one message of a channel, with its offset.
	Publication = protocol.Publication
	// Error is a coded protocol error. Every failure of a hub method that
	// a client or API caller should see holds one: find it with
	// errors.As, since backend failures wrap it around their cause.
	Error = protocol.Error
)
