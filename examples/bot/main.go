// Command bot is an example of the Go client (package client): a bot that
// joins chat:lobby and answers "/time" with the server's clock.
//
//	go run ./examples/bot -url ws://127.0.0.1:8088/realtime
//
// Type /time in http://127.0.0.1:8088/chat and it answers 现在时间: …. It
// reconnects by itself when the server restarts (and loses no message it
// could recover); Ctrl-C stops it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/realtime/protocol"
)

// The bot's room and command.
const (
	lobby       = "chat:lobby"
	timeCommand = "/time"
	// answerTimeout bounds one answer's publish.
	answerTimeout = 5 * time.Second
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8088/realtime", "the server's /realtime socket")
	name := flag.String("name", "报时机器人", "the bot's display name")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, *name, time.Now, log.Printf); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// message is the chat page's publication data.
type message struct {
	Text string `json:"text"`
}

// run connects, joins the lobby and answers until ctx ends. now is the
// clock (tests pass a fixed one); logf reports what nobody awaits.
func run(ctx context.Context, url, name string, now func() time.Time, logf func(string, ...any)) error {
	c := client.New(url, client.Options{
		Name:    name,
		OnError: func(err error) { logf("bot: %v", err) },
		OnState: func(s client.StateChange) {
			if s.State == client.Disconnected && s.Delay >= 0 {
				logf("bot: disconnected (%v), retrying in %s", s.Err, s.Delay)
			}
		},
	})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		return err
	}
	answer := func(p client.Publication) {
		var m message
		if json.Unmarshal(p.Data, &m) != nil || strings.TrimSpace(m.Text) != timeCommand || p.Recovered {
			return // not for the bot, or an old question recovered after a reconnect
		}
		if me, ok := c.Info(); ok && p.Info != nil && p.Info.Client == me.Client {
			return
		}
		actx, cancel := context.WithTimeout(ctx, answerTimeout)
		defer cancel()
		text := fmt.Sprintf("现在时间: %s", now().Format("2006-01-02 15:04:05 MST"))
		if _, err := c.Publish(actx, lobby, message{Text: text}); err != nil {
			var e *client.Error
			if errors.As(err, &e) && e.Code == protocol.CodeRateLimited {
				logf("bot: too many questions, skipping one")
				return
			}
			logf("bot: answer: %v", err)
		}
	}
	if _, err := c.Subscribe(ctx, lobby, client.SubscribeOptions{OnPublication: answer}); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}
