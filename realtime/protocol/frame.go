package protocol

import "bytes"

// SplitLines calls fn for each non-empty '\n'-separated message in frame,
// in order, and stops early when fn returns false. A trailing '\r' on a
// line is ignored. It does not allocate.
func SplitLines(frame []byte, fn func(line []byte) bool) {
	for len(frame) > 0 {
		var line []byte
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			line, frame = frame, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !fn(line) {
			return
		}
	}
}
