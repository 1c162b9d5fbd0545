package handlers

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// OriginPolicy decides which browser origins may open a WebSocket. It is
// immutable after NewOriginPolicy and safe for concurrent use.
type OriginPolicy struct {
	any           bool
	allowed       map[string]struct{}
	behindProxies bool // TRUSTED_PROXIES is set: Fiber checks who sent a forwarded header
}

// NewOriginPolicy allows the listed origins (scheme://host[:port]) besides
// the page's own host; "*" in the list allows every origin. behindProxies
// says TRUSTED_PROXIES is set, so the page's host may come from a trusted
// proxy's X-Forwarded-Host.
func NewOriginPolicy(list []string, behindProxies bool) OriginPolicy {
	p := OriginPolicy{allowed: make(map[string]struct{}, len(list)), behindProxies: behindProxies}
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

// requestHost is the host the client asked for: the Host header, or
// X-Forwarded-Host when a trusted proxy sent it. Fiber's Hostname alone
// would believe X-Forwarded-Host from anyone when no proxy is listed
// (its IsProxyTrusted is true whenever the check is off).
func (p OriginPolicy) requestHost(c *fiber.Ctx) string {
	if p.behindProxies && c.IsProxyTrusted() {
		return c.Hostname()
	}
	return string(c.Request().Host())
}
