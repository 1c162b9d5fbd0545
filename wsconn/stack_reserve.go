package wsconn

// firstTurnFrame is the frame reserveStack takes: with what the goroutine
// has used when it calls it and the runtime's guard, the stack grows from
// the 2 KB a goroutine starts with to 16 KB at once, the most the
// runtime keeps in its per-thread pools of free stacks. That is room
// enough for a session's first read turn on the goroutine the HTTP server
// hands the upgraded connection to: the upgrade's own frames, the handler
// of the first message (for /realtime a JSON decode, a subscribe and its
// reply) and the write. That goroutine is new for every connection, so
// its stack would otherwise grow by copying, each copy walking every
// frame on it, two or three times per connection, deep in the handler.
const firstTurnFrame = 12 << 10

// reserveStack grows the calling goroutine's stack in one step, while it
// is still shallow and cheap to copy. Only for the first turn, whose
// goroutine ends with it and gives the stack back to the pool: a
// goroutine that lives as long as its connection (readBlocking) would
// keep the stack it grew.
//
// The frame is used through i, which the caller passes as 0, so that the
// compiler can neither drop it nor fold the function away.
//
//go:noinline
func reserveStack(i int) byte {
	var frame [firstTurnFrame]byte
	frame[i%len(frame)] = 1
	return frame[(i+1)%len(frame)]
}
