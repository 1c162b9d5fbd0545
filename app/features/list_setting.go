package features

import (
	"fmt"
	"strings"
	"time"
)

// atLeast is a duration setting's Validate: *p must be min or more.
func atLeast(p *time.Duration, min time.Duration) func() error {
	return func() error {
		if *p < min {
			return fmt.Errorf("must be at least %s, got %s", min, *p)
		}
		return nil
	}
}

// listItems splits a list setting, "a:b:c,d:e:f", into its items' fields,
// trimmed. Every item must have the fields form names, colon-separated
// ("id:sport:league:home:away"), which the error quotes; empty items (a
// trailing comma) are skipped.
func listItems(value, form string) ([][]string, error) {
	fields := strings.Count(form, ":") + 1
	var out [][]string
	for item := range strings.SplitSeq(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) != fields {
			return nil, fmt.Errorf("%q is not %s", item, form)
		}
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		out = append(out, parts)
	}
	return out, nil
}
