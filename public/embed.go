// Package public embeds the static files (scripts, styles), served under
// /static.
package public

import "embed"

// FS holds every static file. It is read-only and safe for concurrent use.
//
//go:embed css js
var FS embed.FS
