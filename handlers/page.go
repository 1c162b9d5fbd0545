// Package handlers holds the HTTP and WebSocket handlers. They are thin:
// the connection logic lives in wsconn and the channels in realtime.
package handlers

import (
	"fmt"
	"html/template"
	"regexp"
	"slices"

	"github.com/gofiber/fiber/v2"
)

// PageData is what a page gets from the server, since the
// Content-Security-Policy allows no inline script to carry it: each key
// becomes the attribute data-<key> on the page's <body>, with the value
// its function returns for the request. A script reads it with
// DuplexUI.data(key) (public/js/ui.js) or document.body.dataset; a value
// may be JSON for the script to parse.
//
// A key is lowercase letters and digits, starting with a letter, with
// single hyphens between words ("symbols", "room-list"). The functions are
// called on the request's goroutine, concurrently for concurrent
// requests, so each must be safe for concurrent use.
type PageData map[string]func(c *fiber.Ctx) string

// pageDataKey is what a data-* name may carry: lowercase, so the browser
// does not fold it, and without leading, trailing or double hyphens, so
// its dataset name (room-list → roomList) is unambiguous.
var pageDataKey = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// pageAttr is one data-* attribute as the layout renders it.
type pageAttr struct {
	// Name is trusted markup: it is built only from a key that matched
	// pageDataKey. html/template would otherwise refuse any dynamic
	// attribute name with a hyphen in it.
	Name template.HTMLAttr
	// Value is escaped by html/template as an attribute value.
	Value string
}

// pageDataEntry is one checked key of a PageData.
type pageDataEntry struct {
	name  template.HTMLAttr
	value func(c *fiber.Ctx) string
}

// Page renders the template view (from views/) inside the main layout,
// with no data: PageWith(view, title, nil). The handler is safe for
// concurrent use.
func Page(view, title string) fiber.Handler {
	return PageWith(view, title, nil)
}

// PageWith renders the template view (from views/) inside the main
// layout, titled title, with data as data-* attributes on <body> (the
// values escaped by the template engine). It panics on a key PageData
// does not allow, so a bad key stops the server at start-up instead of
// breaking the page. The handler is safe for concurrent use if data's
// functions are.
func PageWith(view, title string, data PageData) fiber.Handler {
	keys := make([]string, 0, len(data))
	for key := range data {
		if !pageDataKey.MatchString(key) {
			panic(fmt.Sprintf("handlers.PageWith(%q): data key %q is not lowercase a-z and 0-9 words joined by single hyphens", view, key))
		}
		if data[key] == nil {
			panic(fmt.Sprintf("handlers.PageWith(%q): data key %q has no function", view, key))
		}
		keys = append(keys, key)
	}
	// Sorted, so a page's markup is the same from one request to the next.
	slices.Sort(keys)
	entries := make([]pageDataEntry, len(keys))
	for i, key := range keys {
		entries[i] = pageDataEntry{name: template.HTMLAttr("data-" + key), value: data[key]}
	}
	return func(c *fiber.Ctx) error {
		attrs := make([]pageAttr, len(entries))
		for i, e := range entries {
			attrs[i] = pageAttr{Name: e.name, Value: e.value(c)}
		}
		return c.Render(view, fiber.Map{"Title": title, "Data": attrs}, "layouts/main")
	}
}
