package handlers

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// TestPageWithRefusesBadKeys: a key that would not make a plain,
// lowercase data-* attribute, or a key without a function, stops the
// server where the route is built, naming the key, instead of rendering a
// broken or surprising page.
func TestPageWithRefusesBadKeys(t *testing.T) {
	value := func(*fiber.Ctx) string { return "v" }
	for _, key := range []string{"", "Symbols", "room_list", "room list", "-room", "room-", "room--list", "1st", `x" onload="y`, "行情"} {
		msg := panicOf(func() { PageWith("index", "t", PageData{key: value}) })
		if !strings.Contains(msg, strconv.Quote(key)) {
			t.Errorf("PageWith with key %q: panic %q, want one naming the key", key, msg)
		}
	}
	if msg := panicOf(func() { PageWith("index", "t", PageData{"symbols": nil}) }); !strings.Contains(msg, `"symbols"`) {
		t.Errorf("PageWith with a nil function: panic %q, want one naming the key", msg)
	}
	for _, key := range []string{"symbols", "room-list", "a1-b2"} {
		if msg := panicOf(func() { PageWith("index", "t", PageData{key: value}) }); msg != "" {
			t.Errorf("PageWith with the good key %q panicked: %s", key, msg)
		}
	}
}

// panicOf runs f and returns what it panicked with, as text; "" if it
// did not panic.
func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}
