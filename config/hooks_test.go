package config

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHookSettings(t *testing.T) {
	cfg, err := loadTest(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hooks.On() || cfg.Hooks.Timeout != time.Second || cfg.Namespaces["chat"].SubscribeHook || cfg.Namespaces["chat"].PublishHook {
		t.Errorf("hooks are not off by default: %+v", cfg.Hooks)
	}
	cfg, err = loadTest([]string{"-hook-timeout", "250ms"}, env(map[string]string{
		"HOOK_CONNECT_URL":   "https://backend.example/duplex/connect",
		"HOOK_SUBSCRIBE_URL": "http://10.0.0.5:8080/subscribe",
		"HOOK_PUBLISH_URL":   "http://10.0.0.5:8080/publish",
		"HOOK_HEADERS":       "user-agent, x-tenant-id",
		"HOOK_COOKIES":       "session",
		"HOOK_SECRET":        strings.Repeat("s", MinHookSecretBytes),
		"NAMESPACES":         `{"chat":{"subscribe_hook":true,"publish_hook":true}}`,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Hooks{
		ConnectURL: "https://backend.example/duplex/connect", SubscribeURL: "http://10.0.0.5:8080/subscribe",
		PublishURL: "http://10.0.0.5:8080/publish", Timeout: 250 * time.Millisecond,
		Headers: []string{"User-Agent", "X-Tenant-Id"}, Cookies: []string{"session"}, Secret: strings.Repeat("s", MinHookSecretBytes),
	}
	if !reflect.DeepEqual(cfg.Hooks, want) {
		t.Errorf("hooks %+v, want %+v", cfg.Hooks, want)
	}
	if o := cfg.Namespaces["chat"]; !o.SubscribeHook || !o.PublishHook || cfg.Namespaces["live"].SubscribeHook {
		t.Errorf("chat %+v, live %+v: only chat has the hooks", o, cfg.Namespaces["live"])
	}
	for _, line := range cfg.Effective() {
		if strings.HasPrefix(line, "HOOK_SECRET=") && line != "HOOK_SECRET=***" {
			t.Errorf("the secret is logged: %s", line)
		}
	}
}

func TestBadHookSettingsAreRefused(t *testing.T) {
	const url = "http://backend.example/hook"
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOOK_CONNECT_URL": "backend.example/connect"}, "HOOK_CONNECT_URL"},
		{map[string]string{"HOOK_SUBSCRIBE_URL": "ftp://backend.example/s"}, "HOOK_SUBSCRIBE_URL"},
		{map[string]string{"HOOK_PUBLISH_URL": "http://user:pw@backend.example/p"}, "HOOK_PUBLISH_URL"},
		{map[string]string{"HOOK_TIMEOUT": "1ms"}, "HOOK_TIMEOUT"},
		{map[string]string{"HOOK_TIMEOUT": "1m"}, "HOOK_TIMEOUT"},
		{map[string]string{"HOOK_TIMEOUT": "soon"}, "HOOK_TIMEOUT"},
		{map[string]string{"HOOK_HEADERS": "User-Agent"}, "HOOK_HEADERS: only the connect hook"},
		{map[string]string{"HOOK_CONNECT_URL": url, "HOOK_HEADERS": "Bad Header"}, "HOOK_HEADERS"},
		{map[string]string{"HOOK_CONNECT_URL": url, "HOOK_COOKIES": "a=b"}, "HOOK_COOKIES"},
		{map[string]string{"HOOK_CONNECT_URL": url, "HOOK_SECRET": "short"}, "HOOK_SECRET"},
		{map[string]string{"HOOK_SECRET": strings.Repeat("s", 40)}, "HOOK_SECRET: no hook"},
		{map[string]string{"NAMESPACES": `{"chat":{"subscribe_hook":true}}`}, "subscribe_hook needs HOOK_SUBSCRIBE_URL"},
		{map[string]string{"NAMESPACES": `{"chat":{"publish_hook":true}}`}, "publish_hook needs HOOK_PUBLISH_URL"},
		{map[string]string{"HOOK_PUBLISH_URL": url, "NAMESPACES": `{"chat":{"client_publish":false,"publish_hook":true}}`}, "publish hook needs client publish"},
	} {
		_, err := loadTest(nil, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %q", tc.env, err, tc.want)
		}
	}
}
