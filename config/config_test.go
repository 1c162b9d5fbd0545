package config

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// testExtension stands for the server's features: a chat-like and a
// live-like namespace (the real ones are in app/features).
func testExtension() Extension {
	return Extension{Name: "test", Namespaces: realtime.Namespaces{
		"chat": {
			HistorySize: 100, HistoryTTL: 10 * time.Minute, Presence: realtime.PresenceMembers, JoinLeave: true,
			JoinLeaveTick: 200 * time.Millisecond, JoinLeaveMaxMembers: 200, ClientPublish: true, PublishRate: 10, PublishBurst: 20,
		},
		"live": {Presence: realtime.PresenceCount, ClientPublish: true, PublishRate: 3, PublishBurst: 5, SlowPolicy: realtime.PolicyDropOldest},
	}}
}

// loadTest is Load with testExtension.
func loadTest(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	return Load(args, getenv, usageOut, testExtension())
}

func TestDefaults(t *testing.T) {
	cfg, err := loadTest(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr() != "0.0.0.0:8088" {
		t.Errorf("Addr = %q, want all interfaces on 8088", cfg.Addr())
	}
	if cfg.WS.MaxMessageBytes != 64<<10 || cfg.MaxConnections != 10000 || len(cfg.AllowedOrigins) != 0 {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if cfg.WS.Poller != wsconn.PollerAuto {
		t.Errorf("WS_POLLER defaults to %v, want auto", cfg.WS.Poller)
	}
	off, err := loadTest([]string{"-ws-poller", "OFF"}, env(nil), io.Discard)
	if err != nil || off.WS.Poller != wsconn.PollerOff {
		t.Errorf("-ws-poller OFF: %v %v", off.WS.Poller, err)
	}
	if !cfg.WS.Compression || !cfg.WS.CompressionContext || cfg.WS.CompressionMinBytes != 128 {
		t.Errorf("compression defaults to %v (context %v) from %d bytes, want on (on) from 128", cfg.WS.Compression, cfg.WS.CompressionContext, cfg.WS.CompressionMinBytes)
	}
	plain, err := loadTest([]string{"-ws-compression", "off", "-ws-compression-min-bytes", "0"}, env(nil), io.Discard)
	if err != nil || plain.WS.Compression || plain.WS.CompressionMinBytes != 0 {
		t.Errorf("-ws-compression off: %v %d %v", plain.WS.Compression, plain.WS.CompressionMinBytes, err)
	}
	alone, err := loadTest(nil, env(map[string]string{"WS_COMPRESSION_CONTEXT": "off"}), io.Discard)
	if err != nil || !alone.WS.Compression || alone.WS.CompressionContext {
		t.Errorf("WS_COMPRESSION_CONTEXT=off: compression %v, context %v, %v", alone.WS.Compression, alone.WS.CompressionContext, err)
	}
}

func TestEnvironmentThenFlags(t *testing.T) {
	e := env(map[string]string{
		"PORT":                 "9000",
		"WS_MAX_MESSAGE_BYTES": "1024",
		"ALLOWED_ORIGINS":      " https://a.example ,http://b.example:8080/ ",
		"WS_PING_INTERVAL":     "5s",
	})
	cfg, err := loadTest([]string{"-port", "9100", "-max-connections", "7"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9100 {
		t.Errorf("flag did not win over env: Port = %d", cfg.Port)
	}
	if cfg.MaxConnections != 7 || cfg.WS.MaxMessageBytes != 1024 || cfg.WS.PingInterval != 5*time.Second {
		t.Errorf("got %+v", cfg)
	}
	want := []string{"https://a.example", "http://b.example:8080"}
	if !reflect.DeepEqual(cfg.AllowedOrigins, want) {
		t.Errorf("AllowedOrigins = %q, want %q", cfg.AllowedOrigins, want)
	}
}

func TestInvalidSettingsAreNamed(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"PORT": "0"}, nil, "PORT"},
		{map[string]string{"PORT": "abc"}, nil, "PORT"},
		{nil, []string{"-port", "70000"}, "PORT"},
		{map[string]string{"WS_MAX_MESSAGE_BYTES": "12"}, nil, "WS_MAX_MESSAGE_BYTES"},
		{map[string]string{"WS_PING_INTERVAL": "soon"}, nil, "WS_PING_INTERVAL"},
		{map[string]string{"MAX_CONNECTIONS": "-1"}, nil, "MAX_CONNECTIONS"},
		{map[string]string{"ALLOWED_ORIGINS": "evil.example"}, nil, "ALLOWED_ORIGINS"},
		{map[string]string{"ALLOWED_ORIGINS": "https://a.example/path"}, nil, "ALLOWED_ORIGINS"},
		{map[string]string{"SHUTDOWN_DRAIN_DELAY": "20s"}, nil, "SHUTDOWN_DRAIN_DELAY"},
		{map[string]string{"WS_SEND_QUEUE_BYTES": "100"}, nil, "WS_SEND_QUEUE_BYTES"},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{map[string]string{"WS_POLLER": "epoll"}, nil, "WS_POLLER"},
		{map[string]string{"WS_COMPRESSION": "maybe"}, nil, "WS_COMPRESSION"},
		{map[string]string{"WS_COMPRESSION_MIN_BYTES": "-1"}, nil, "WS_COMPRESSION_MIN_BYTES"},
		{map[string]string{"MAX_CONNECTIONS_PER_IP": "-1"}, nil, "MAX_CONNECTIONS_PER_IP"},
		{map[string]string{"CONNECT_RATE_PER_IP": "lots"}, nil, "CONNECT_RATE_PER_IP"},
		{nil, []string{"extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		_, err := loadTest(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v args %v: err = %v, want it to name %s", tc.env, tc.args, err, tc.want)
		}
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := loadTest(nil, env(map[string]string{"PORT": "0", "MAX_CONNECTIONS": "0"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PORT") || !strings.Contains(err.Error(), "MAX_CONNECTIONS") {
		t.Fatalf("err = %v, want both settings named", err)
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := loadTest([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"-port", "PORT", "ALLOWED_ORIGINS", `"8088"`} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("help does not mention %s:\n%s", name, out.String())
		}
	}
}

func TestEffectiveListsEverySetting(t *testing.T) {
	got := strings.Join(Default().Effective(), " ")
	for _, s := range settings() {
		if !strings.Contains(got, s.env+"=") {
			t.Errorf("Effective() lacks %s", s.env)
		}
	}
}

func TestSecretsAreMasked(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{
		"API_KEY":      "hunter2-api-key",
		"TOKEN_SECRET": strings.Repeat("s", 40),
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.Effective(), " ")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "ssss") {
		t.Fatalf("secret printed: %s", got)
	}
	if !strings.Contains(got, "API_KEY=***") || !strings.Contains(got, "TOKEN_SECRET=***") {
		t.Fatalf("secrets not shown as set: %s", got)
	}
	if !strings.Contains(strings.Join(Default().Effective(), " "), "API_KEY= ") {
		t.Fatal("an unset secret should show as empty")
	}
}

func TestNamespacesMergeOverDefaults(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{
		"NAMESPACES": `{"chat":{"history_size":500,"history_ttl":"1h"},` +
			`"game":{"client_publish":true,"presence":"count","slow_policy":"drop-oldest"}}`,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	chat := cfg.Namespaces["chat"]
	if chat.HistorySize != 500 || chat.HistoryTTL != time.Hour || !chat.JoinLeave || chat.PublishRate != 10 {
		t.Errorf("chat = %+v: overrides or kept defaults wrong", chat)
	}
	game := cfg.Namespaces["game"]
	if !game.ClientPublish || game.HistorySize != 0 || game.SlowPolicy.String() != "drop-oldest" {
		t.Errorf("game = %+v", game)
	}
	if _, ok := cfg.Namespaces["live"]; !ok {
		t.Error("a feature's namespace was lost")
	}
}

func TestNamespacesJoinLeaveCoalescing(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{
		"NAMESPACES": `{"chat":{"join_leave_tick":"50ms","join_leave_max_members":1000},` +
			`"room":{"presence":"members","join_leave":true}}`,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if chat := cfg.Namespaces["chat"]; chat.JoinLeaveTick != 50*time.Millisecond || chat.JoinLeaveMaxMembers != 1000 {
		t.Errorf("chat = %+v", chat)
	}
	// A new namespace with join/leave gets the defaults, not zero.
	if room := cfg.Namespaces["room"]; room.JoinLeaveTick != realtime.DefaultJoinLeaveTick || room.JoinLeaveMaxMembers != realtime.DefaultJoinLeaveMaxMembers {
		t.Errorf("room = %+v", room)
	}
}

func TestNamespacesFlowControl(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{
		"NAMESPACES": `{"room":{"client_publish":true,"flow_tick":"250ms"},"game":{"flow_tick":"50ms","flow_budget":12}}`,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// A namespace that turns flow control on gets the default budget.
	if room := cfg.Namespaces["room"]; room.FlowTick != 250*time.Millisecond || room.FlowBudget != realtime.DefaultFlowBudget {
		t.Errorf("room = %+v", room)
	}
	if game := cfg.Namespaces["game"]; game.FlowTick != 50*time.Millisecond || game.FlowBudget != 12 {
		t.Errorf("game = %+v", game)
	}
	// "0s" turns it off.
	cfg, err = loadTest(nil, env(map[string]string{"NAMESPACES": `{"room":{"flow_tick":"0s"}}`}), io.Discard)
	if err != nil || cfg.Namespaces["room"].FlowTick != 0 {
		t.Errorf("flow_tick 0s: %+v, %v", cfg.Namespaces["room"], err)
	}
}

func TestInvalidRealtimeSettings(t *testing.T) {
	for _, tc := range []struct{ env, value, want string }{
		{"TOKEN_SECRET", "short", "TOKEN_SECRET"},
		{"NAMESPACES", `{"chat":{"history_sise":5}}`, "NAMESPACES"},
		{"NAMESPACES", `{"chat":{"presence":"everyone"}}`, "NAMESPACES"},
		{"NAMESPACES", `{"x":{"join_leave":true}}`, "join/leave needs member presence"},
		{"NAMESPACES", `{"chat":{"history_size":5,"history_ttl":"0s"}}`, "TTL"},
		{"NAMESPACES", `[1,2]`, "NAMESPACES"},
		{"NAMESPACES", `{"chat":{"join_leave_tick":"soon"}}`, "join_leave_tick"},
		{"NAMESPACES", `{"chat":{"join_leave_tick":"0s"}}`, "join_leave_tick"},
		{"NAMESPACES", `{"chat":{"join_leave_tick":"1m"}}`, "join/leave tick"},
		{"NAMESPACES", `{"chat":{"join_leave_max_members":0}}`, "join_leave_max_members"},
		{"NAMESPACES", `{"chat":{"join_leave_max":10}}`, "unknown field"},
		{"NAMESPACES", `{"chat":{"flow_tick":"soon"}}`, "flow_tick"},
		{"NAMESPACES", `{"chat":{"flow_tick":"-1s"}}`, "flow_tick"},
		{"NAMESPACES", `{"chat":{"flow_tick":"1ms"}}`, "flow tick must be between"},
		{"NAMESPACES", `{"chat":{"flow_tick":"1s","flow_budget":0}}`, "flow_budget"},
		{"NAMESPACES", `{"chat":{"flow_tick":"1s","flow_budget":100000}}`, "flow budget"},
		{"MAX_SUBSCRIPTIONS", "0", "MAX_SUBSCRIPTIONS"},
		{"TOKEN_TTL", "1s", "TOKEN_TTL"},
	} {
		_, err := loadTest(nil, env(map[string]string{tc.env: tc.value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: err = %v, want it to mention %q", tc.env, tc.value, err, tc.want)
		}
	}
}

func TestTrustedProxiesMustBeAddresses(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"}), io.Discard)
	if err != nil || len(cfg.TrustedProxies) != 3 {
		t.Fatalf("valid list: %v %v", cfg.TrustedProxies, err)
	}
	_, err = loadTest(nil, env(map[string]string{"TRUSTED_PROXIES": "nginx.local"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES") {
		t.Fatalf("hostname accepted: %v", err)
	}
}

func TestNATSPingSettings(t *testing.T) {
	cfg, err := loadTest(nil, env(map[string]string{"BROKER": "nats", "NATS_PING_INTERVAL": "5s", "NATS_MAX_PINGS_OUTSTANDING": "3"}), io.Discard)
	if err != nil || cfg.NATS.PingInterval != 5*time.Second || cfg.NATS.MaxPingsOutstanding != 3 {
		t.Fatalf("valid: %+v %v", cfg.NATS, err)
	}
	if d := Default().NATS; d.PingInterval != 2*time.Second || d.MaxPingsOutstanding != 2 {
		t.Errorf("defaults %s and %d, want the documented 2s and 2", d.PingInterval, d.MaxPingsOutstanding)
	}
	for _, tc := range []struct{ env, value string }{
		{"NATS_PING_INTERVAL", "50ms"},
		{"NATS_PING_INTERVAL", "often"},
		{"NATS_MAX_PINGS_OUTSTANDING", "0"},
	} {
		_, err := loadTest(nil, env(map[string]string{"BROKER": "nats", tc.env: tc.value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.env) {
			t.Errorf("%s=%s: err = %v, want it to name the setting", tc.env, tc.value, err)
		}
	}
}
