package features

import (
	"io"
	"testing"
	"time"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/realtime"
)

func TestDefaultFeaturesLoad(t *testing.T) {
	fs := Default()
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard, ConfigExtensions(fs)...)
	if err != nil {
		t.Fatalf("the product's features do not load: %v", err)
	}
	for _, ns := range []string{"chat", "live", "push", "user"} {
		if _, ok := cfg.Namespaces[ns]; !ok {
			t.Errorf("namespace %s missing", ns)
		}
	}
	if chat := cfg.Namespaces["chat"]; chat.JoinLeaveTick != 200*time.Millisecond || chat.JoinLeaveMaxMembers != 200 {
		t.Errorf("chat = %+v, want join/leave gathered per 200ms, count alone above 200 members", chat)
	}
	if live := cfg.Namespaces["live"]; live.SlowPolicy != realtime.PolicyDropOldest || !live.ClientPublish {
		t.Errorf("live = %+v", live)
	}
	paths := map[string]string{}
	for _, f := range fs {
		if f.Name == "" {
			t.Error("a feature has no name")
		}
		for _, p := range f.Pages {
			if other, dup := paths[p.Path]; dup {
				t.Errorf("page %s is served by %s and %s", p.Path, other, f.Name)
			}
			paths[p.Path] = f.Name
		}
	}
}

func TestNamespacesOverrideAFeaturesOptions(t *testing.T) {
	env := map[string]string{"NAMESPACES": `{"live":{"publish_rate":50,"publish_burst":100}}`}
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard, ConfigExtensions(Default())...)
	if err != nil {
		t.Fatal(err)
	}
	if live := cfg.Namespaces["live"]; live.PublishRate != 50 || live.SlowPolicy != realtime.PolicyDropOldest {
		t.Errorf("live = %+v, want the rate overridden and the rest the feature's", live)
	}
	env["NAMESPACES"] = `{"live":{"publish_rat":50}}`
	if _, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard, ConfigExtensions(Default())...); err == nil {
		t.Error("an unknown field was accepted")
	}
}
