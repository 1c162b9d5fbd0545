package realtime

import "github.com/duplex/duplex/realtime/protocol"

// subscribeReply is the subscribe command's reply for the hub's result,
// bounded by maxBytes (ClientLimits.MaxReplyBytes):
//
//   - recover: the missed publications and recovered:true; a gap too
//     large for one reply is not recovered (the client reloads history
//     page by page, as after any lost gap);
//   - latest: the newest kept publications that fit, at most cmd.Latest,
//     always as a list; with recover, when the gap is not recovered
//     (recovered:false then comes with the latest ones).
//
// Whatever it holds ends at the reply's position, so the pushes that
// follow it continue the stream. It is a pure function.
func subscribeReply(cmd protocol.Command, res SubscribeResult, maxBytes int) protocol.SubscribeResult {
	r := protocol.SubscribeResult{Offset: res.Position.Offset, Epoch: res.Position.Epoch}
	recovered := res.Recovered
	if cmd.Recover != nil {
		if recovered && fitPublications(res.Publications, res.Position.Epoch, maxBytes) < len(res.Publications) {
			recovered = false
		}
		r.Recovered = &recovered
	}
	switch {
	case recovered:
		r.Publications = res.Publications
	case cmd.Latest > 0:
		// Either the hub's latest publications, or recovered ones that did
		// not fit: both end at the position, so their newest are the
		// latest.
		r.Publications = newestThatFit(res.Publications, cmd.Latest, res.Position.Epoch, maxBytes)
	}
	if cmd.Latest > 0 && r.Publications == nil {
		r.Publications = []Publication{} // encoded as [], not omitted
	}
	return r
}
