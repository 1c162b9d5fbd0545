package handlers

import (
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

// RealtimeConns is realtime.ControlConfig.FindConn over the registry:
// the open session or SSE stream with that id, to be closed. It looks up
// what the registry keeps anyway, so a connection costs nothing more for
// being findable. Every WebSocket route's sessions and the SSE streams
// share the id space, but only /realtime ids are ever handed out (as
// client ids). Safe from any goroutine.
func RealtimeConns(r *wsconn.Registry) func(id uint64) realtime.ConnCloser {
	return func(id uint64) realtime.ConnCloser {
		if s := r.Find(id); s != nil {
			return subscriber{s}
		}
		if s := r.FindStream(id); s != nil {
			return streamSubscriber{s}
		}
		return nil
	}
}
