package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
)

func TestBotAnswersTimeInTheLobby(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clock := func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }
	botCtx, stopBot := context.WithCancel(ctx)
	botDone := make(chan error, 1)
	go func() { botDone <- run(botCtx, s.RealtimeURL(), "报时机器人", clock, t.Logf) }()
	defer func() {
		stopBot()
		if err := <-botDone; err != context.Canceled {
			t.Errorf("bot ended with %v", err)
		}
	}()

	var mu sync.Mutex
	var texts []string
	got := make(chan struct{}, 16)
	person := client.New(s.RealtimeURL(), client.Options{Name: "李旺"})
	defer person.Close()
	if err := person.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := person.Subscribe(ctx, lobby, client.SubscribeOptions{
		OnPublication: func(p client.Publication) {
			var m message
			_ = json.Unmarshal(p.Data, &m)
			mu.Lock()
			texts = append(texts, p.Info.Name+": "+m.Text)
			mu.Unlock()
			got <- struct{}{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The bot is in the room once presence lists it.
	deadline := time.Now().Add(10 * time.Second)
	for !botPresent(ctx, t, person) {
		if time.Now().After(deadline) {
			t.Fatal("the bot never joined chat:lobby")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, text := range []string{"hello", "/time"} {
		if _, err := person.Publish(ctx, lobby, message{Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"李旺: hello", "李旺: /time", "报时机器人: 现在时间: 2025-01-02 03:04:05 UTC"}
	for range want {
		select {
		case <-got:
		case <-ctx.Done():
			mu.Lock()
			t.Fatalf("got %q, want %q", texts, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Errorf("the lobby shows\n%s\nwant\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
}

func botPresent(ctx context.Context, t *testing.T, c *client.Client) bool {
	pr, err := c.Presence(ctx, lobby)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range pr.Clients {
		if m.Name == "报时机器人" {
			return true
		}
	}
	return false
}
