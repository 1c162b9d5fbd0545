// Package client is the Go client of duplex's /realtime protocol
// (docs/protocol.md), for backends, bots and tests: what duplex.js is for
// a page.
//
//	c := client.New("ws://127.0.0.1:8088/realtime", client.Options{Name: "bot"})
//	defer c.Close()
//	if err := c.Connect(ctx); err != nil { … }
//	sub, err := c.Subscribe(ctx, "chat:lobby", client.SubscribeOptions{
//		OnPublication: func(p client.Publication) { … },
//	})
//	pos, err := c.Publish(ctx, "chat:lobby", map[string]string{"text": "你好"})
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == protocol.CodeRateLimited { … }
//
// # Two layers
//
// Client is the connection that stays up. It sends connect first on every
// socket (Options.Token or TokenFunc, else Options.Name), reconnects with
// full-jitter backoff (a random delay below 0.5 s, 1 s, 2 s, … 20 s),
// resubscribes every Subscription with recover from the last offset it
// delivered (and latest, when asked), delivers recovered publications in
// order without duplicates, and calls OnReload when the server could not
// recover the gap. It pings after 25 s of silence and replaces a
// connection that does not answer. With TokenFunc it refreshes the token
// before its exp (the refresh command).
//
// Conn is one WebSocket, nothing more: commands matched to replies by id,
// every other message handed over as it is read, raw frames for tests
// that need to send what a correct client never would.
//
// # Calls and errors
//
// Every call takes a context: it bounds the wait for the reply and, while
// the client is disconnected, for the next connection (there is no
// outbox: a command waits, bounded by ctx, and is sent once connected).
// A refused command is an *Error carrying the server's stable code from
// realtime/protocol; a connection that ended before the reply gives an
// error wrapping ErrDisconnected (the command may have been carried out:
// a publish may be stored; recovery or History tells); a refused upgrade
// a *HandshakeError with the HTTP status; a server's close frame a
// *CloseError (CloseCode reads it).
//
// # Handlers and goroutines
//
// Everything the server pushes is applied as it is read (a subscribe
// reply before the pushes that follow it in the same frame, as the
// protocol requires) and then handed to the application's handlers on one
// goroutine of the Client's, one at a time, in arrival order across all
// subscriptions. So a handler may block for a while, and may call the
// Client (answer a message with Publish) without deadlocking; the reader
// never waits for it, and events queue meanwhile. Close waits for the
// queued handlers, so it must not be called from one.
//
// What a publication is: IsPublication. A {"missed":n} notice is not one
// (Options.OnMissed), nor are join, leave and presence_count (their own
// handlers), nor a push kind this package does not know (ignored).
//
// Every goroutine has an owner: the Client's connection loop and handler
// goroutine are started by Connect and ended by Close; each Conn's reader
// is ended by Conn.Close or by the connection's end.
package client
