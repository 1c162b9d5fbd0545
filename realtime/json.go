package realtime

import (
	"bytes"
	"encoding/json"

	"github.com/duplex/duplex/realtime/protocol"
)

// compactJSON checks that data is one JSON value and returns a compact
// copy (no newlines, so it can be framed). Errors are bad_request.
func compactJSON(data []byte) ([]byte, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "data is required")
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "data is not valid JSON: %v", err)
	}
	return buf.Bytes(), nil
}
