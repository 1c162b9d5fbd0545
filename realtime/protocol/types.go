package protocol

import "encoding/json"

// Position is a place in a channel's stream: the offset of the last
// publication seen and the epoch of the stream it belongs to. When the
// stream is lost and restarted (for example with a new in-memory broker)
// its epoch changes, so an old position can be recognised as unusable.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ClientInfo describes who published a message or joined a channel.
// User is empty for guests. ConnInfo and ChanInfo (compact JSON, or
// nil) are what the backend's connect and subscribe hooks attached to
// the connection and to its subscription of the channel.
type ClientInfo struct {
	Client   string          `json:"client,omitempty"`
	User     string          `json:"user,omitempty"`
	Name     string          `json:"name,omitempty"`
	ConnInfo json.RawMessage `json:"conn_info,omitempty"`
	ChanInfo json.RawMessage `json:"chan_info,omitempty"`
}

// Publication is one message in a channel. Data is compact JSON.
type Publication struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
	Info   *ClientInfo     `json:"info,omitempty"`
	// Priority marks a publication the server published with the
	// priority flag (HTTP API): flow control never samples it out.
	Priority bool `json:"priority,omitempty"`
}
