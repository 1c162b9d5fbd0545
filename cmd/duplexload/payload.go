package main

import (
	"bytes"
	"fmt"
	"strconv"
)

// The tutorial server's reply is tutorialPrefix + msg + tutorialMiddle + msg.
const (
	tutorialPrefix = "服务端已收到消息:"
	tutorialMiddle = "服务端发来消息: Hello,"
)

// appendPayload appends a size-byte ASCII message to dst that names the
// connection and the sequence number ("<conn>-<seq>-" in base 36, padded
// with 'x'). Messages are unique per (conn, seq) as long as that prefix fits
// in size (12 bytes cover 100k connections and 2 billion messages each);
// beyond that the prefix is cut to size.
func appendPayload(dst []byte, conn int, seq uint64, size int) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, uint64(conn), 36)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, seq, 36)
	dst = append(dst, '-')
	if len(dst)-start > size {
		return dst[:start+size]
	}
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// appendExpected appends the reply a correct server sends for msg.
func appendExpected(dst []byte, mode expectMode, msg []byte) []byte {
	if mode == expectVerbatim {
		return append(dst, msg...)
	}
	dst = append(dst, tutorialPrefix...)
	dst = append(dst, msg...)
	dst = append(dst, tutorialMiddle...)
	return append(dst, msg...)
}

// expectedLen is len(appendExpected(nil, mode, msg)) for a msgLen-byte msg.
func expectedLen(mode expectMode, msgLen int) int {
	if mode == expectVerbatim {
		return msgLen
	}
	return len(tutorialPrefix) + len(tutorialMiddle) + 2*msgLen
}

// checkReply reports whether reply is the correct answer to msg; want is
// scratch space (may be nil) and is returned for reuse.
func checkReply(mode expectMode, msg, reply, want []byte) ([]byte, error) {
	want = appendExpected(want[:0], mode, msg)
	if bytes.Equal(reply, want) {
		return want, nil
	}
	return want, fmt.Errorf("wrong reply to %s: got %s, want %s", clip(msg), clip(reply), clip(want))
}

// clip quotes b for an error message, cut to a readable length.
func clip(b []byte) string {
	const max = 120
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}
