package handlers

import (
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may open a WebSocket. It is
// immutable after NewOriginPolicy and safe for concurrent use.
type OriginPolicy struct {
	any     bool
	allowed map[string]struct{}
}

// NewOriginPolicy allows the listed origins (scheme://host[:port]) besides
// the page's own host; "*" in the list allows every origin.
func NewOriginPolicy(list []string) OriginPolicy {
	p := OriginPolicy{allowed: make(map[string]struct{}, len(list))}
	for _, o := range list {
		if o == "*" {
			p.any = true
		}
		p.allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = struct{}{}
	}
	return p
}

// Allows reports whether a request from origin to host may upgrade. No
// Origin header means a non-browser client, which cross-site hijacking
// cannot involve, so it is allowed.
func (p OriginPolicy) Allows(origin, host string) bool {
	if origin == "" || p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	_, ok := p.allowed[strings.ToLower(origin)]
	return ok
}
