// Package config holds duplex's settings: one plain struct, loaded once at
// start-up from flags and the environment, then validated.
//
// A Config is a value: after Load returns it is never mutated, so it may be
// read from any goroutine.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

// Config is the effective configuration of one duplex process.
type Config struct {
	// Host is the interface to listen on; empty or 0.0.0.0 means all.
	Host string
	// Port is the TCP port for HTTP and WebSocket traffic.
	Port int
	// ShutdownTimeout bounds the whole graceful shutdown.
	ShutdownTimeout time.Duration
	// ShutdownDrainDelay is how long /readyz answers 503 before the
	// listener closes, so load balancers stop sending new clients first.
	ShutdownDrainDelay time.Duration

	// MaxConnections caps open WebSocket connections across all routes.
	MaxConnections int
	// MaxConnectionsPerIP caps the open WebSocket connections of one client
	// address (as TRUSTED_PROXIES defines it); 0 means no cap.
	MaxConnectionsPerIP int
	// ConnectRatePerIP is how many new WebSocket connections one client
	// address may open per second (and at once); 0 means no limit.
	ConnectRatePerIP int
	// AllowedOrigins lists extra browser origins (scheme://host[:port]) that
	// may open WebSockets, besides the page's own host. "*" allows any.
	AllowedOrigins []string

	// TrustedProxies lists the proxies (IPs or CIDRs) whose
	// X-Forwarded-For names the client; from anyone else it is ignored.
	TrustedProxies []string

	// WS holds the per-connection WebSocket limits.
	WS WebSocket

	// APIKey guards the HTTP push API; empty turns the API off (503).
	APIKey string
	// TokenSecret signs and verifies HS256 client tokens; empty means only
	// guests can connect.
	TokenSecret string
	// TokenTTL is how long minted tokens stay valid.
	TokenTTL time.Duration
	// MaxSubscriptions caps the channels one connection may subscribe to.
	MaxSubscriptions int
	// Namespaces holds each channel namespace's rules: the features'
	// defaults (Extension.Namespaces) with NAMESPACES merged over them.
	Namespaces realtime.Namespaces
	// GuestNamePrefix and UserNamePrefix, followed by the client id,
	// name a guest or a user who gave no display name.
	GuestNamePrefix string
	UserNamePrefix  string
	// Hooks are the backend hooks (HOOK_*), off by default.
	Hooks Hooks

	// Broker is "memory" (one process) or "nats" (several nodes).
	Broker string
	// NATS configures the NATS broker; used only when Broker is "nats".
	NATS NATS

	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string

	// namespaceDefaults are the extensions' namespaces, which NAMESPACES
	// is merged over; extra are the extensions' settings.
	namespaceDefaults realtime.Namespaces
	extra             []Setting
}

// WebSocket holds the limits applied to every WebSocket connection.
type WebSocket struct {
	// MaxMessageBytes is the largest message a client may send; larger
	// messages close the connection with 1009.
	MaxMessageBytes int64
	// PingInterval is how often the server pings an idle client.
	PingInterval time.Duration
	// PongTimeout is how long after a ping the client has to answer before
	// the connection is considered dead.
	PongTimeout time.Duration
	// WriteTimeout is how long a client may take nothing of what is
	// written to it before it is dropped.
	WriteTimeout time.Duration
	// SendQueueBytes caps the bytes queued for one client; past it the
	// slow-consumer policy applies.
	SendQueueBytes int
	// Poller is how idle connections are read: auto (epoll on Linux, no
	// goroutine per idle connection) or off (a goroutine per connection,
	// as on every other system).
	Poller wsconn.PollerMode
	// Compression accepts browsers' permessage-deflate offers (RFC 7692;
	// the client never keeps its context).
	Compression bool
	// CompressionContext lets /realtime keep the server's context where a
	// client allows it, as browsers do: a channel's publication is then
	// compressed against the previous one, once for every subscriber that
	// got that one last. Off, every message is compressed on its own.
	CompressionContext bool
	// CompressionMinBytes is the smallest message sent compressed on a
	// connection that negotiated it; smaller ones go plain.
	CompressionMinBytes int
}

// NATS holds the NATS broker's settings.
type NATS struct {
	// URLs of the NATS servers; credentials may be in the URL.
	URLs []string
	// At most one of Token, User and Password, CredsFile.
	Token     string
	User      string
	Password  string
	CredsFile string
	// TLS files: CAFile verifies servers; CertFile and KeyFile identify us.
	CAFile   string
	CertFile string
	KeyFile  string
	// Prefix starts every subject and stream; nodes that share channels
	// share it.
	Prefix string
	// Startup is "wait" (retry an unreachable NATS, logging each try) or
	// "fail" (exit with an error).
	Startup string
	// Replicas of each JetStream stream (3 on a three-server cluster).
	Replicas int
	// PresenceTTL bounds how long a crashed node's presence entries stay
	// visible.
	PresenceTTL time.Duration
	// PingInterval and MaxPingsOutstanding: how often the node pings
	// NATS, and how many unanswered pings make it give the connection up
	// (and turn unready) and reconnect.
	PingInterval        time.Duration
	MaxPingsOutstanding int
}

// DefaultCompressionMinBytes is WS_COMPRESSION_MIN_BYTES's default: below
// about this size deflate saves a few bytes at best and costs the CPU all
// the same.
const DefaultCompressionMinBytes = 128

// maxCompressionMinBytes bounds WS_COMPRESSION_MIN_BYTES; past a megabyte
// compression would be on in name only (WS_COMPRESSION=off says that).
const maxCompressionMinBytes = 1 << 20

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Host:            "0.0.0.0",
		Port:            8088,
		ShutdownTimeout: 10 * time.Second,
		MaxConnections:  10000,
		// Generous: a campus or a mobile carrier puts many users behind
		// one address. They stop one client from taking every slot.
		MaxConnectionsPerIP: 1000,
		ConnectRatePerIP:    100,
		WS: WebSocket{
			MaxMessageBytes:     64 << 10,
			PingInterval:        25 * time.Second,
			PongTimeout:         10 * time.Second,
			WriteTimeout:        10 * time.Second,
			SendQueueBytes:      1 << 20,
			Compression:         true,
			CompressionContext:  true,
			CompressionMinBytes: DefaultCompressionMinBytes,
		},
		TokenTTL:         24 * time.Hour,
		MaxSubscriptions: realtime.DefaultMaxSubscriptions,
		// Default display names are in the pages' language, Chinese.
		GuestNamePrefix: "访客",
		UserNamePrefix:  "用户",
		Hooks:           Hooks{Timeout: realtime.DefaultHookTimeout},
		Broker:          "memory",
		NATS: NATS{
			URLs:        []string{"nats://127.0.0.1:4222"},
			Prefix:      "duplex",
			Startup:     "wait",
			Replicas:    1,
			PresenceTTL: 30 * time.Second,

			PingInterval:        realtime.DefaultNATSPingInterval,
			MaxPingsOutstanding: realtime.DefaultNATSMaxPingsOutstanding,
		},
		LogLevel:  "info",
		LogFormat: "json",
	}
}

// Addr is the listen address in host:port form.
func (c Config) Addr() string {
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

// setting binds one field to its environment variable and flag. A secret
// setting is never printed.
type setting struct {
	env    string
	flag   string
	usage  string
	get    func(c *Config) string
	set    func(c *Config, v string) error
	secret bool
}

func settings() []setting {
	return append([]setting{
		{"HOST", "host", "interface to listen on",
			func(c *Config) string { return c.Host },
			func(c *Config, v string) error { c.Host = v; return nil }, false},
		{"PORT", "port", "TCP port to listen on",
			func(c *Config) string { return strconv.Itoa(c.Port) },
			func(c *Config, v string) error { return parseInt(v, &c.Port) }, false},
		{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "deadline for graceful shutdown",
			func(c *Config) string { return c.ShutdownTimeout.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.ShutdownTimeout) }, false},
		{"SHUTDOWN_DRAIN_DELAY", "shutdown-drain-delay", "how long /readyz fails before the listener closes at shutdown",
			func(c *Config) string { return c.ShutdownDrainDelay.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.ShutdownDrainDelay) }, false},
		{"MAX_CONNECTIONS", "max-connections", "cap on open WebSocket connections",
			func(c *Config) string { return strconv.Itoa(c.MaxConnections) },
			func(c *Config, v string) error { return parseInt(v, &c.MaxConnections) }, false},
		{"MAX_CONNECTIONS_PER_IP", "max-connections-per-ip", "cap on open WebSocket connections from one client address (0: none)",
			func(c *Config) string { return strconv.Itoa(c.MaxConnectionsPerIP) },
			func(c *Config, v string) error { return parseInt(v, &c.MaxConnectionsPerIP) }, false},
		{"CONNECT_RATE_PER_IP", "connect-rate-per-ip", "new WebSocket connections one client address may open per second, and at once (0: no limit)",
			func(c *Config) string { return strconv.Itoa(c.ConnectRatePerIP) },
			func(c *Config, v string) error { return parseInt(v, &c.ConnectRatePerIP) }, false},
		{"ALLOWED_ORIGINS", "allowed-origins", "comma-separated extra browser origins allowed to open WebSockets (* for any)",
			func(c *Config) string { return strings.Join(c.AllowedOrigins, ",") },
			func(c *Config, v string) error { c.AllowedOrigins = splitList(v); return nil }, false},
		{"TRUSTED_PROXIES", "trusted-proxies", "comma-separated proxy IPs or CIDRs whose X-Forwarded-For is believed",
			func(c *Config) string { return strings.Join(c.TrustedProxies, ",") },
			func(c *Config, v string) error { c.TrustedProxies = splitList(v); return nil }, false},
		{"WS_MAX_MESSAGE_BYTES", "ws-max-message-bytes", "largest inbound WebSocket message",
			func(c *Config) string { return strconv.FormatInt(c.WS.MaxMessageBytes, 10) },
			func(c *Config, v string) error {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return errors.New("not an integer")
				}
				c.WS.MaxMessageBytes = n
				return nil
			}, false},
		{"WS_PING_INTERVAL", "ws-ping-interval", "how often idle clients are pinged",
			func(c *Config) string { return c.WS.PingInterval.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.WS.PingInterval) }, false},
		{"WS_PONG_TIMEOUT", "ws-pong-timeout", "how long a client has to answer a ping",
			func(c *Config) string { return c.WS.PongTimeout.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.WS.PongTimeout) }, false},
		{"WS_WRITE_TIMEOUT", "ws-write-timeout", "how long a client may take nothing of what is written to it before it is dropped",
			func(c *Config) string { return c.WS.WriteTimeout.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.WS.WriteTimeout) }, false},
		{"WS_SEND_QUEUE_BYTES", "ws-send-queue-bytes", "bytes queued per client before the slow-consumer policy applies",
			func(c *Config) string { return strconv.Itoa(c.WS.SendQueueBytes) },
			func(c *Config, v string) error { return parseInt(v, &c.WS.SendQueueBytes) }, false},
		{"WS_POLLER", "ws-poller", "auto (Linux: idle connections wait in one epoll poller, with no goroutine each) or off (a goroutine per connection, as on other systems)",
			func(c *Config) string { return c.WS.Poller.String() },
			func(c *Config, v string) (err error) {
				c.WS.Poller, err = wsconn.ParsePollerMode(strings.ToLower(strings.TrimSpace(v)))
				return err
			}, false},
		{"WS_COMPRESSION", "ws-compression", "on: accept permessage-deflate offers (the client keeps no context); off: decline them",
			func(c *Config) string { return (*boolValue)(&c.WS.Compression).String() },
			func(c *Config, v string) error { return (*boolValue)(&c.WS.Compression).Set(v) }, false},
		{"WS_COMPRESSION_CONTEXT", "ws-compression-context", "on: where the client allows it, /realtime compresses a channel's publication against the previous one; off: every message on its own",
			func(c *Config) string { return (*boolValue)(&c.WS.CompressionContext).String() },
			func(c *Config, v string) error { return (*boolValue)(&c.WS.CompressionContext).Set(v) }, false},
		{"WS_COMPRESSION_MIN_BYTES", "ws-compression-min-bytes", "smallest message sent compressed where permessage-deflate was negotiated",
			func(c *Config) string { return strconv.Itoa(c.WS.CompressionMinBytes) },
			func(c *Config, v string) error { return parseInt(v, &c.WS.CompressionMinBytes) }, false},
		{"API_KEY", "api-key", "bearer key for the HTTP push API (empty: API off)",
			func(c *Config) string { return c.APIKey },
			func(c *Config, v string) error { c.APIKey = v; return nil }, true},
		{"TOKEN_SECRET", "token-secret", "HS256 secret for client tokens, at least 32 bytes (empty: guests only)",
			func(c *Config) string { return c.TokenSecret },
			func(c *Config, v string) error { c.TokenSecret = v; return nil }, true},
		{"TOKEN_TTL", "token-ttl", "how long minted client tokens stay valid",
			func(c *Config) string { return c.TokenTTL.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.TokenTTL) }, false},
		{"MAX_SUBSCRIPTIONS", "max-subscriptions", "channels one connection may subscribe to",
			func(c *Config) string { return strconv.Itoa(c.MaxSubscriptions) },
			func(c *Config, v string) error { return parseInt(v, &c.MaxSubscriptions) }, false},
		{"NAMESPACES", "namespaces", "JSON object of namespace options merged over the defaults",
			func(c *Config) string { return describeNamespaces(c.Namespaces) },
			func(c *Config, v string) error {
				ns, err := parseNamespaces(v, c.namespaceDefaults)
				c.Namespaces = ns
				return err
			}, false},
		{"GUEST_NAME_PREFIX", "guest-name-prefix", "display name of a guest who gave none, followed by the client id",
			func(c *Config) string { return c.GuestNamePrefix },
			func(c *Config, v string) error { c.GuestNamePrefix = v; return nil }, false},
		{"USER_NAME_PREFIX", "user-name-prefix", "display name of a signed-in user who gave none, followed by the client id",
			func(c *Config) string { return c.UserNamePrefix },
			func(c *Config, v string) error { c.UserNamePrefix = v; return nil }, false},
		{"BROKER", "broker", "memory (one process) or nats (several nodes sharing channels)",
			func(c *Config) string { return c.Broker },
			func(c *Config, v string) error { c.Broker = strings.ToLower(strings.TrimSpace(v)); return nil }, false},
		{"NATS_URL", "nats-url", "comma-separated NATS server URLs",
			func(c *Config) string { return redactURLs(c.NATS.URLs) },
			func(c *Config, v string) error { c.NATS.URLs = splitList(v); return nil }, false},
		{"NATS_TOKEN", "nats-token", "NATS token",
			func(c *Config) string { return c.NATS.Token },
			func(c *Config, v string) error { c.NATS.Token = v; return nil }, true},
		{"NATS_USER", "nats-user", "NATS user",
			func(c *Config) string { return c.NATS.User },
			func(c *Config, v string) error { c.NATS.User = v; return nil }, false},
		{"NATS_PASSWORD", "nats-password", "NATS password",
			func(c *Config) string { return c.NATS.Password },
			func(c *Config, v string) error { c.NATS.Password = v; return nil }, true},
		{"NATS_CREDS", "nats-creds", "NATS credentials file",
			func(c *Config) string { return c.NATS.CredsFile },
			func(c *Config, v string) error { c.NATS.CredsFile = v; return nil }, false},
		{"NATS_TLS_CA", "nats-tls-ca", "CA file that verifies the NATS servers",
			func(c *Config) string { return c.NATS.CAFile },
			func(c *Config, v string) error { c.NATS.CAFile = v; return nil }, false},
		{"NATS_TLS_CERT", "nats-tls-cert", "client certificate file for NATS",
			func(c *Config) string { return c.NATS.CertFile },
			func(c *Config, v string) error { c.NATS.CertFile = v; return nil }, false},
		{"NATS_TLS_KEY", "nats-tls-key", "client key file for NATS",
			func(c *Config) string { return c.NATS.KeyFile },
			func(c *Config, v string) error { c.NATS.KeyFile = v; return nil }, false},
		{"NATS_PREFIX", "nats-prefix", "subject and stream prefix shared by the nodes of one deployment",
			func(c *Config) string { return c.NATS.Prefix },
			func(c *Config, v string) error { c.NATS.Prefix = strings.TrimSpace(v); return nil }, false},
		{"NATS_STARTUP", "nats-startup", "wait (retry an unreachable NATS) or fail (exit at once)",
			func(c *Config) string { return c.NATS.Startup },
			func(c *Config, v string) error { c.NATS.Startup = strings.ToLower(strings.TrimSpace(v)); return nil }, false},
		{"NATS_REPLICAS", "nats-replicas", "replicas of each JetStream stream (3 on a three-server cluster)",
			func(c *Config) string { return strconv.Itoa(c.NATS.Replicas) },
			func(c *Config, v string) error { return parseInt(v, &c.NATS.Replicas) }, false},
		{"PRESENCE_TTL", "presence-ttl", "with NATS: how long a crashed node's presence entries stay visible",
			func(c *Config) string { return c.NATS.PresenceTTL.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.NATS.PresenceTTL) }, false},
		{"NATS_PING_INTERVAL", "nats-ping-interval", "how often the node pings NATS (a hung server is noticed within (outstanding+1) intervals)",
			func(c *Config) string { return c.NATS.PingInterval.String() },
			func(c *Config, v string) error { return parseDuration(v, &c.NATS.PingInterval) }, false},
		{"NATS_MAX_PINGS_OUTSTANDING", "nats-max-pings-outstanding", "unanswered pings after which the NATS connection is given up and replaced",
			func(c *Config) string { return strconv.Itoa(c.NATS.MaxPingsOutstanding) },
			func(c *Config, v string) error { return parseInt(v, &c.NATS.MaxPingsOutstanding) }, false},
		{"LOG_LEVEL", "log-level", "debug, info, warn or error",
			func(c *Config) string { return c.LogLevel },
			func(c *Config, v string) error { c.LogLevel = strings.ToLower(strings.TrimSpace(v)); return nil }, false},
		{"LOG_FORMAT", "log-format", "json or text",
			func(c *Config) string { return c.LogFormat },
			func(c *Config, v string) error { c.LogFormat = strings.ToLower(strings.TrimSpace(v)); return nil }, false},
	}, hookSettings()...)
}

// Load builds the configuration from defaults, then the environment (read
// through getenv), then command-line flags, and validates the result.
// Flags win over the environment. Help output goes to usageOut. exts are
// what the server's features add: their namespaces and settings.
func Load(args []string, getenv func(string) string, usageOut io.Writer, exts ...Extension) (Config, error) {
	cfg := Default()
	namespaces, extra, err := merge(exts)
	if err != nil {
		return Config{}, err
	}
	cfg.Namespaces, cfg.namespaceDefaults, cfg.extra = namespaces, namespaces, extra
	all := settings()
	for _, s := range extra {
		all = append(all, s.asSetting())
	}
	defaults := make([]string, len(all))
	for i, s := range all {
		defaults[i] = s.get(&cfg)
	}

	for _, s := range all {
		if v := getenv(s.env); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		}
	}

	fs := flag.NewFlagSet("duplex", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	for i, s := range all {
		var bare bool // an extension's bool: -flag alone means on
		if i >= len(all)-len(extra) {
			b, ok := extra[i-(len(all)-len(extra))].Value.(interface{ IsBoolFlag() bool })
			bare = ok && b.IsBoolFlag()
		}
		fs.Var(flagValue{s, &cfg, bare}, s.flag, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, defaults[i]))
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// flagValue is one setting as a flag. A setting whose value is a bool
// (an extension's BoolSetting) may be given as a bare -flag.
type flagValue struct {
	s    setting
	cfg  *Config
	bare bool
}

func (f flagValue) String() string {
	if f.cfg == nil {
		return ""
	}
	return f.s.get(f.cfg)
}
func (f flagValue) Set(v string) error { return f.s.set(f.cfg, v) }
func (f flagValue) IsBoolFlag() bool   { return f.bare }

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, env, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{env}, args...)...))
		}
	}
	check(c.Port >= 1 && c.Port <= 65535, "PORT", "must be 1..65535, got %d", c.Port)
	check(c.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT", "must be positive, got %s", c.ShutdownTimeout)
	check(c.ShutdownDrainDelay >= 0 && c.ShutdownDrainDelay < c.ShutdownTimeout, "SHUTDOWN_DRAIN_DELAY",
		"must be at least 0 and less than SHUTDOWN_TIMEOUT (%s), got %s", c.ShutdownTimeout, c.ShutdownDrainDelay)
	check(c.MaxConnections >= 1, "MAX_CONNECTIONS", "must be at least 1, got %d", c.MaxConnections)
	check(c.MaxConnectionsPerIP >= 0, "MAX_CONNECTIONS_PER_IP", "must be 0 (no cap) or more, got %d", c.MaxConnectionsPerIP)
	check(c.ConnectRatePerIP >= 0 && c.ConnectRatePerIP <= 1_000_000, "CONNECT_RATE_PER_IP",
		"must be 0 (no limit) to 1000000, got %d", c.ConnectRatePerIP)
	check(c.WS.MaxMessageBytes >= 125 && c.WS.MaxMessageBytes <= 64<<20,
		"WS_MAX_MESSAGE_BYTES", "must be 125..67108864, got %d", c.WS.MaxMessageBytes)
	check(c.WS.PingInterval >= 100*time.Millisecond, "WS_PING_INTERVAL", "must be at least 100ms, got %s", c.WS.PingInterval)
	check(c.WS.PongTimeout >= 100*time.Millisecond, "WS_PONG_TIMEOUT", "must be at least 100ms, got %s", c.WS.PongTimeout)
	check(c.WS.WriteTimeout >= 100*time.Millisecond, "WS_WRITE_TIMEOUT", "must be at least 100ms, got %s", c.WS.WriteTimeout)
	check(c.WS.CompressionMinBytes >= 0 && c.WS.CompressionMinBytes <= maxCompressionMinBytes, "WS_COMPRESSION_MIN_BYTES",
		"must be 0..%d, got %d", maxCompressionMinBytes, c.WS.CompressionMinBytes)
	check(int64(c.WS.SendQueueBytes) >= c.WS.MaxMessageBytes, "WS_SEND_QUEUE_BYTES",
		"must be at least WS_MAX_MESSAGE_BYTES (%d), got %d", c.WS.MaxMessageBytes, c.WS.SendQueueBytes)
	check(oneOf(c.LogLevel, "debug", "info", "warn", "error"), "LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	check(oneOf(c.LogFormat, "json", "text"), "LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	check(c.TokenSecret == "" || len(c.TokenSecret) >= realtime.MinTokenSecretBytes, "TOKEN_SECRET",
		"must be at least %d bytes, got %d", realtime.MinTokenSecretBytes, len(c.TokenSecret))
	check(c.TokenTTL >= time.Minute, "TOKEN_TTL", "must be at least 1m, got %s", c.TokenTTL)
	check(c.MaxSubscriptions >= 1, "MAX_SUBSCRIPTIONS", "must be at least 1, got %d", c.MaxSubscriptions)
	if err := c.Namespaces.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("NAMESPACES: %w", err))
	}
	check(c.GuestNamePrefix != "", "GUEST_NAME_PREFIX", "must not be empty")
	check(c.UserNamePrefix != "", "USER_NAME_PREFIX", "must not be empty")
	errs = append(errs, c.Hooks.validate(c.Namespaces)...)
	check(len(c.Namespaces) > 0, "NAMESPACES", "no namespace is defined: the server has no feature that brings one, and NAMESPACES adds none")
	for _, s := range c.extra {
		if s.Validate != nil {
			if err := s.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.Env, err))
			}
		}
	}
	check(oneOf(c.Broker, "memory", "nats"), "BROKER", "must be memory or nats, got %q", c.Broker)
	if c.Broker == "nats" {
		check(len(c.NATS.URLs) > 0, "NATS_URL", "must name at least one server")
		check(oneOf(c.NATS.Startup, "wait", "fail"), "NATS_STARTUP", "must be wait or fail, got %q", c.NATS.Startup)
		check(c.NATS.Replicas >= 1 && c.NATS.Replicas <= 5, "NATS_REPLICAS", "must be 1..5, got %d", c.NATS.Replicas)
		check(c.NATS.PresenceTTL >= time.Second, "PRESENCE_TTL", "must be at least 1s, got %s", c.NATS.PresenceTTL)
		check(c.NATS.PingInterval >= 100*time.Millisecond, "NATS_PING_INTERVAL", "must be at least 100ms, got %s", c.NATS.PingInterval)
		check(c.NATS.MaxPingsOutstanding >= 1 && c.NATS.MaxPingsOutstanding <= 100, "NATS_MAX_PINGS_OUTSTANDING", "must be 1..100, got %d", c.NATS.MaxPingsOutstanding)
		check((c.NATS.CertFile == "") == (c.NATS.KeyFile == ""), "NATS_TLS_CERT", "and NATS_TLS_KEY must be set together")
		for _, u := range c.NATS.URLs {
			if pu, err := url.Parse(u); err != nil || !oneOf(pu.Scheme, "nats", "tls") || pu.Host == "" {
				errs = append(errs, fmt.Errorf("NATS_URL: %q must be nats://host:port or tls://host:port", redactURL(u)))
			}
		}
	}
	for _, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p))
			}
		}
	}
	for _, o := range c.AllowedOrigins {
		if err := validateOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("ALLOWED_ORIGINS: %q: %w", o, err))
		}
	}
	return errors.Join(errs...)
}

// Effective lists every setting as ENV=value, in a stable order, for the
// start-up log. Secrets show as *** when set.
func (c Config) Effective() []string {
	var out []string
	all := settings()
	for _, s := range c.extra {
		all = append(all, s.asSetting())
	}
	for _, s := range all {
		v := s.get(&c)
		if s.secret && v != "" {
			v = "***"
		}
		out = append(out, s.env+"="+v)
	}
	return out
}

// redactURLs shows NATS URLs without any credentials in them.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return strings.Join(out, ",")
}

func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return u
	}
	pu.User = url.User("***")
	return pu.String()
}

func validateOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return errors.New("must be scheme://host[:port] with nothing else")
	}
	return nil
}

func parseInt(v string, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not an integer")
	}
	*dst = n
	return nil
}

func parseDuration(v string, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a duration such as 10s or 500ms")
	}
	*dst = d
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.TrimSuffix(p, "/"))
		}
	}
	return out
}

func oneOf(v string, options ...string) bool {
	for _, o := range options {
		if v == o {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
