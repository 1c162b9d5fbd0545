package protocol

import (
	"bytes"
	"encoding/json"
)

// marshal is json.Marshal without HTML escaping, for everything the
// protocol encodes. json.Marshal rewrites <, > and & (even inside a
// json.RawMessage) as \u003c and so on: safe for HTML, but the wire would
// no longer carry data byte for byte as it was published, a history reply
// would differ from the push of the same publication (and be up to six
// times larger), and EncodeCommand would not round-trip DecodeCommand.
// Nothing the server sends is put into HTML by the server; clients escape
// what they show. It is safe for concurrent use.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// Encode ends the value with '\n'; a compact value has no other raw
	// newline (strings carry \n escaped).
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
