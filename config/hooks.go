package config

import (
	"errors"
	"fmt"
	"maps"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/duplex/duplex/realtime"
)

// Bounds of the hook settings.
const (
	// MinHookTimeout and MaxHookTimeout bound HOOK_TIMEOUT: a hook call
	// holds up its connection's commands while it runs.
	MinHookTimeout = 10 * time.Millisecond
	MaxHookTimeout = 30 * time.Second
	// MinHookSecretBytes is the shortest HOOK_SECRET, as for TOKEN_SECRET.
	MinHookSecretBytes = realtime.MinTokenSecretBytes
)

// Hooks configures the backend hooks; an empty URL is a hook that is off.
// The subscribe and publish hooks apply in the namespaces that enable
// them ("subscribe_hook", "publish_hook" in NAMESPACES).
type Hooks struct {
	ConnectURL, SubscribeURL, PublishURL string
	// Timeout bounds one call.
	Timeout time.Duration
	// Headers (canonical names) and Cookies are the request headers and
	// cookies of the upgrade passed to the connect hook; no other is.
	Headers []string
	Cookies []string
	// Secret, when set, signs every call (HMAC-SHA256 of the body).
	Secret string
}

// On reports whether any hook is configured.
func (h Hooks) On() bool { return h.ConnectURL != "" || h.SubscribeURL != "" || h.PublishURL != "" }

func hookSettings() []setting {
	url := func(env, flag, what string, field func(c *Config) *string) setting {
		return setting{env, flag, "URL the " + what + " hook POSTs to (empty: off)",
			func(c *Config) string { return *field(c) },
			func(c *Config, v string) error { *field(c) = strings.TrimSpace(v); return nil }, false}
	}
	return []setting{
		url("HOOK_CONNECT_URL", "hook-connect-url", "connect", func(c *Config) *string { return &c.Hooks.ConnectURL }),
		url("HOOK_SUBSCRIBE_URL", "hook-subscribe-url", "subscribe (in namespaces with subscribe_hook)", func(c *Config) *string { return &c.Hooks.SubscribeURL }),
		url("HOOK_PUBLISH_URL", "hook-publish-url", "publish (in namespaces with publish_hook)", func(c *Config) *string { return &c.Hooks.PublishURL }),
		{"HOOK_TIMEOUT", "hook-timeout", "deadline of one hook call; a hook that misses it fails the command with unavailable",
			func(c *Config) string { return c.Hooks.Timeout.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.Hooks.Timeout) }, false},
		{"HOOK_HEADERS", "hook-headers", "comma-separated request headers of the upgrade passed to the connect hook",
			func(c *Config) string { return strings.Join(c.Hooks.Headers, ",") },
			func(c *Config, v string) error {
				c.Hooks.Headers = nil
				for _, h := range splitList(v) {
					c.Hooks.Headers = append(c.Hooks.Headers, textproto.CanonicalMIMEHeaderKey(h))
				}
				return nil
			}, false},
		{"HOOK_COOKIES", "hook-cookies", "comma-separated cookies of the upgrade passed to the connect hook",
			func(c *Config) string { return strings.Join(c.Hooks.Cookies, ",") },
			func(c *Config, v string) error { c.Hooks.Cookies = splitList(v); return nil }, false},
		{"HOOK_SECRET", "hook-secret", "shared secret that signs every hook call (X-Duplex-Signature: sha256=<HMAC of the body>)",
			func(c *Config) string { return c.Hooks.Secret },
			func(c *Config, v string) error { c.Hooks.Secret = v; return nil }, true},
	}
}

// validate reports every invalid hook setting, and every namespace that
// enables a hook with no URL.
func (h Hooks) validate(ns realtime.Namespaces) []error {
	var errs []error
	for _, u := range []struct{ env, url string }{
		{"HOOK_CONNECT_URL", h.ConnectURL}, {"HOOK_SUBSCRIBE_URL", h.SubscribeURL}, {"HOOK_PUBLISH_URL", h.PublishURL},
	} {
		if u.url == "" {
			continue
		}
		if pu, err := url.Parse(u.url); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
			errs = append(errs, fmt.Errorf("%s: %q must be an http:// or https:// URL with a host and no credentials", u.env, u.url))
		}
	}
	if h.Timeout < MinHookTimeout || h.Timeout > MaxHookTimeout {
		errs = append(errs, fmt.Errorf("HOOK_TIMEOUT: must be %s to %s, got %s", MinHookTimeout, MaxHookTimeout, h.Timeout))
	}
	for _, list := range []struct {
		env   string
		names []string
	}{{"HOOK_HEADERS", h.Headers}, {"HOOK_COOKIES", h.Cookies}} {
		if len(list.names) > 0 && h.ConnectURL == "" {
			errs = append(errs, fmt.Errorf("%s: only the connect hook is sent them: set HOOK_CONNECT_URL", list.env))
		}
		for _, name := range list.names {
			if !validToken(name) {
				errs = append(errs, fmt.Errorf("%s: %q is not a header or cookie name", list.env, name))
			}
		}
	}
	if h.Secret != "" && len(h.Secret) < MinHookSecretBytes {
		errs = append(errs, fmt.Errorf("HOOK_SECRET: must be at least %d bytes, got %d", MinHookSecretBytes, len(h.Secret)))
	}
	if h.Secret != "" && !h.On() {
		errs = append(errs, errors.New("HOOK_SECRET: no hook is configured (HOOK_CONNECT_URL, HOOK_SUBSCRIBE_URL, HOOK_PUBLISH_URL)"))
	}
	for _, name := range slices.Sorted(maps.Keys(ns)) {
		o := ns[name]
		if o.SubscribeHook && h.SubscribeURL == "" {
			errs = append(errs, fmt.Errorf("NAMESPACES: namespace %q: subscribe_hook needs HOOK_SUBSCRIBE_URL", name))
		}
		if o.PublishHook && h.PublishURL == "" {
			errs = append(errs, fmt.Errorf("NAMESPACES: namespace %q: publish_hook needs HOOK_PUBLISH_URL", name))
		}
	}
	return errs
}

// validToken reports whether s is an RFC 9110 token, which header and
// cookie names are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
