package protocol

import "strconv"

// Tick is the body of a flow-controlled channel's tick frame:
//
//	{"channel":"live:main","tick":{"shown":2,"total":183,"publications":[…]}}
//
// Total is how many publications the channel had in the tick, Shown how
// many of them (and of the priority ones carried over from ticks the
// viewer missed) are in Publications. Missed, only in the frame a
// viewer gets after it was too slow for earlier ticks, is how many
// publications those ticks would have shown it.
type Tick struct {
	Shown        int           `json:"shown"`
	Total        int           `json:"total"`
	Missed       int           `json:"missed,omitempty"`
	Publications []Publication `json:"publications"`
}

// EncodeTick encodes one tick frame. Every publication's Data must be
// compact valid JSON (as the hub guarantees); the result has no raw
// newline. It is encoded once per tick and the same bytes go to every
// viewer that gets the same sample.
func EncodeTick(channel string, total, missed int, pubs []Publication) []byte {
	ch, _ := marshal(channel)
	size := len(ch) + 64
	for i := range pubs {
		size += len(pubs[i].Data) + 128
	}
	b := make([]byte, 0, size)
	b = append(b, `{"channel":`...)
	b = append(b, ch...)
	b = append(b, `,"tick":{"shown":`...)
	b = strconv.AppendInt(b, int64(len(pubs)), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	if missed > 0 {
		b = append(b, `,"missed":`...)
		b = strconv.AppendInt(b, int64(missed), 10)
	}
	b = append(b, `,"publications":[`...)
	for i := range pubs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTickPublication(b, &pubs[i])
	}
	return append(b, "]}}"...)
}

func appendTickPublication(b []byte, p *Publication) []byte {
	b = append(b, `{"offset":`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, p.Data...)
	if p.Info != nil {
		info, _ := marshal(p.Info)
		b = append(b, `,"info":`...)
		b = append(b, info...)
	}
	if p.Priority {
		b = append(b, `,"priority":true`...)
	}
	return append(b, '}')
}
