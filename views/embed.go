// Package views embeds the HTML templates, so the binary needs no files
// beside it. Names are relative to this folder: "index", "layouts/main".
package views

import "embed"

// FS holds every template. It is read-only and safe for concurrent use.
//
//go:embed *.html layouts/*.html
var FS embed.FS
