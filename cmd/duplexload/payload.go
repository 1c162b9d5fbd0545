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

// The chat payload: a room's users (each always with the same id, name,
// avatar and level, as a chat server sends them) and what they say.
type chatUser struct {
	uid   int
	name  string
	level int
}

var (
	chatUsers = []chatUser{
		{100231, "李旺", 12}, {100487, "王芳", 3}, {101022, "张伟", 27}, {102355, "刘洋", 8},
		{103911, "陈静", 15}, {104002, "小明", 1}, {105117, "alice", 33}, {106820, "bob_42", 5},
		{107733, "夜猫子", 19}, {108004, "路人甲", 2}, {109561, "momo", 41}, {110293, "大熊", 7},
	}
	chatTexts = []string{
		"大家好", "今天的比赛太精彩了", "主播加油!", "哈哈哈哈", "这个操作666", "有人一起吗",
		"刚下班,来晚了", "前方高能", "弹幕护体", "good game", "nice shot", "lol",
		"这波不亏", "求BGM", "第一次来,关注了", "明天几点开播?", "画质好清楚", "上海的朋友举手",
		"我觉得还行", "笑死我了", "see you tomorrow", "well played", "这价格可以入手", "已三连",
	}
	chatColors = []string{"#ffffff", "#ffcc00", "#66ccff", "#ff6699"}
	chatFiller = []string{"ok ", "gg ", "wow ", "666 ", "nice ", "hi ", "lol ", "yes "}
)

// appendChatData appends size bytes (exactly, for a size of 64 or more) of
// chat-like JSON naming seq and ts as appendBroadcastData does: the last
// messages of a room, as a chat or 弹幕 server would push them,
// {"dxseq":N,"dxts":T,"msgs":[{"type":"chat","user":{"uid":…,"name":…,
// "avatar":…,"level":…},"text":…,"color":…,"ts":…},…]}, different in
// every publication (who speaks, what, when).
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
	at := ts / 1e6 // milliseconds, rising through the messages
	var entry []byte
	for {
		entry = entry[:0]
		if !first {
			entry = append(entry, ',')
		}
		u := chatUsers[next(len(chatUsers))]
		entry = append(entry, `{"type":"chat","user":{"uid":`...)
		entry = strconv.AppendInt(entry, int64(u.uid), 10)
		entry = append(entry, `,"name":"`...)
		entry = append(entry, u.name...)
		entry = append(entry, `","avatar":"https://cdn.example.com/avatar/`...)
		entry = strconv.AppendInt(entry, int64(u.uid), 10)
		entry = append(entry, `.png","level":`...)
		entry = strconv.AppendInt(entry, int64(u.level), 10)
		entry = append(entry, `},"text":"`...)
		for k := range 1 + next(3) {
			if k > 0 {
				entry = append(entry, ' ')
			}
			entry = append(entry, chatTexts[next(len(chatTexts))]...)
		}
		entry = append(entry, `","color":"`...)
		entry = append(entry, chatColors[next(len(chatColors))]...)
		at += int64(next(3000))
		entry = append(entry, `","ts":`...)
		entry = strconv.AppendInt(entry, at, 10)
		entry = append(entry, '}')
		if len(dst)-start+len(entry)+closing > size {
			break
		}
		dst = append(dst, entry...)
		first = false
	}
	// The rest: one last message of ASCII text cut to fit, or spaces.
	rest := size - closing - (len(dst) - start)
	const lastOpen, lastClose = `{"type":"chat","text":"`, `"}`
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
