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

// payloadKind is what pads a broadcast publication's data to its size.
type payloadKind string

const (
	// payloadPad pads with one repeated letter: the cheapest to make and
	// to check, and compressible to almost nothing.
	payloadPad payloadKind = "pad"
	// payloadChat pads with chat-like JSON messages (users, names, text
	// mixing Chinese and English, timestamps), different in every
	// publication, so that permessage-deflate shrinks it about as much
	// as it shrinks real chat and 弹幕 traffic.
	payloadChat payloadKind = "chat"
)

func (p *payloadKind) String() string {
	if *p == "" {
		return string(payloadPad)
	}
	return string(*p)
}

func (p *payloadKind) Set(s string) error {
	switch payloadKind(s) {
	case payloadPad, payloadChat:
		*p = payloadKind(s)
		return nil
	}
	return fmt.Errorf("must be %q or %q", payloadPad, payloadChat)
}

// Words of the chat payload.
var (
	chatNames = []string{"李旺", "王芳", "张伟", "刘洋", "陈静", "小明", "alice", "bob_42", "夜猫子", "路人甲", "momo", "大熊"}
	chatTexts = []string{
		"大家好", "今天的比赛太精彩了", "主播加油!", "哈哈哈哈", "这个操作666", "有人一起吗",
		"刚下班,来晚了", "前方高能", "弹幕护体", "good game", "nice shot", "lol",
		"这波不亏", "求BGM", "第一次来,关注了", "明天几点开播?", "画质好清楚", "上海的朋友举手",
		"我觉得还行", "笑死我了", "see you tomorrow", "well played", "这价格可以入手", "已三连",
	}
	chatFiller = []string{"ok ", "gg ", "wow ", "666 ", "nice ", "hi ", "lol ", "yes "}
)

// appendChatData appends size bytes (exactly, for a size of 64 or more) of
// chat-like JSON naming seq and ts as appendBroadcastData does:
// {"dxseq":N,"dxts":T,"msgs":[{"uid":…,"name":…,"text":…,"ts":…},…]}.
func appendChatData(dst []byte, seq uint64, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"dxseq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"dxts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"msgs":[`...)
	rng := seq*0x9E3779B97F4A7C15 + 1
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	const closing = len(`]}`)
	first := true
	var entry []byte
	for {
		entry = entry[:0]
		if !first {
			entry = append(entry, ',')
		}
		entry = append(entry, `{"uid":`...)
		entry = strconv.AppendInt(entry, int64(100000+next(900000)), 10)
		entry = append(entry, `,"name":"`...)
		entry = append(entry, chatNames[next(len(chatNames))]...)
		entry = append(entry, `","text":"`...)
		for k := range 1 + next(3) {
			if k > 0 {
				entry = append(entry, ' ')
			}
			entry = append(entry, chatTexts[next(len(chatTexts))]...)
		}
		entry = append(entry, `","ts":`...)
		entry = strconv.AppendInt(entry, ts/1e6+int64(next(60000)), 10)
		entry = append(entry, '}')
		if len(dst)-start+len(entry)+closing > size {
			break
		}
		dst = append(dst, entry...)
		first = false
	}
	// The rest: one last message of ASCII text cut to fit, or spaces.
	rest := size - closing - (len(dst) - start)
	const lastOpen, lastClose = `{"text":"`, `"}`
	comma := 0
	if !first {
		comma = 1
	}
	if n := rest - comma - len(lastOpen) - len(lastClose); n > 0 {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, lastOpen...)
		for n > 0 {
			w := chatFiller[next(len(chatFiller))]
			w = w[:min(len(w), n)]
			dst = append(dst, w...)
			n -= len(w)
		}
		dst = append(dst, lastClose...)
	} else {
		for range max(rest, 0) {
			dst = append(dst, ' ')
		}
	}
	return append(dst, `]}`...)
}

// appendData appends a publication's data of the given kind.
func appendData(dst []byte, kind payloadKind, seq uint64, ts int64, size int) []byte {
	if kind == payloadChat {
		return appendChatData(dst, seq, ts, size)
	}
	return appendBroadcastData(dst, seq, ts, size)
}
