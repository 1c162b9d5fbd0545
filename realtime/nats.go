package realtime

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSOptions configure the connection shared by NATSBroker and
// NATSPresence. Zero fields get defaults.
type NATSOptions struct {
	// URLs are the servers to connect to (nats://, tls://); default
	// nats://127.0.0.1:4222. One entry may itself be a comma-separated
	// list (NATS_URL style).
	URLs []string
	// Credentials: at most one of Token, User/Password, CredsFile.
	Token     string
	User      string
	Password  string
	CredsFile string
	// TLS: CAFile verifies the servers; CertFile and KeyFile (both or
	// neither) authenticate this client.
	CAFile   string
	CertFile string
	KeyFile  string

	// Name is the connection name shown in the server's monitoring
	// (default "duplex").
	Name string
	// Prefix starts every subject and stream name (default "duplex"); one
	// subject token of A-Z a-z 0-9 _ -. Nodes sharing channels use the
	// same prefix; different prefixes isolate deployments on one NATS.
	Prefix string

	// ConnectWait bounds one connection attempt (default 2 s).
	ConnectWait time.Duration
	// WaitForNATS, when set, makes the constructor retry an unreachable
	// NATS (logging each failure) until its ctx ends; when unset, it
	// fails at once with an error naming the URLs.
	WaitForNATS bool
	// ReconnectWait is the pause between reconnect attempts (default 500
	// ms, with jitter); reconnecting never gives up until Close.
	ReconnectWait time.Duration
	// PublishTimeout bounds one Publish when the caller's ctx has no
	// earlier deadline (default 2 s).
	PublishTimeout time.Duration
	// PingInterval is how often the client pings the server (default
	// DefaultNATSPingInterval), and MaxPingsOutstanding how many pings may
	// go unanswered (default DefaultNATSMaxPingsOutstanding) before the
	// connection counts as dead and is replaced: a hung server (one that
	// still accepts connections but answers nothing) is noticed within
	// about (MaxPingsOutstanding+1) * PingInterval. The client library's
	// own defaults (2 min, 2) would leave a node ready for minutes while
	// every publish times out.
	PingInterval        time.Duration
	MaxPingsOutstanding int

	// Namespaces, when set, lets the broker create or update every
	// namespace's stream at start-up (otherwise each is created on the
	// first publish, from that publish's PublishOptions).
	Namespaces Namespaces
	// Replicas of every stream the broker creates (default 1; 3 on a
	// three-server cluster).
	Replicas int
	// ChannelIdleTTL is how long a channel's position (last offset and
	// epoch) survives without publications (default 24 h, at least the
	// namespace's HistoryTTL). After that JetStream drops its last message
	// and the next publication starts a new epoch at offset 1.
	ChannelIdleTTL time.Duration
	// GapWait is how long an out-of-order publication waits for the
	// missing ones before they are read from the stream (default 100 ms).
	GapWait time.Duration

	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Defaults of NATSOptions.PingInterval and MaxPingsOutstanding: a hung
// server is noticed within 6 s, and a server may be silent for 4 s (a
// long pause, a busy link) before the connection is given up.
const (
	DefaultNATSPingInterval        = 2 * time.Second
	DefaultNATSMaxPingsOutstanding = 2
)

func (o *NATSOptions) defaults() error {
	if len(o.URLs) == 0 {
		o.URLs = []string{nats.DefaultURL}
	}
	if o.Name == "" {
		o.Name = "duplex"
	}
	if o.Prefix == "" {
		o.Prefix = "duplex"
	}
	if !validToken(o.Prefix) {
		return fmt.Errorf("nats: prefix %q must be one token of A-Z a-z 0-9 _ -", o.Prefix)
	}
	if o.ConnectWait <= 0 {
		o.ConnectWait = 2 * time.Second
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 500 * time.Millisecond
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultNATSPingInterval
	}
	if o.MaxPingsOutstanding <= 0 {
		o.MaxPingsOutstanding = DefaultNATSMaxPingsOutstanding
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.ChannelIdleTTL <= 0 {
		o.ChannelIdleTTL = 24 * time.Hour
	}
	if o.GapWait <= 0 {
		o.GapWait = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("nats: TLS needs both a certificate and a key file")
	}
	n := 0
	for _, set := range []bool{o.Token != "", o.User != "" || o.Password != "", o.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("nats: use only one of token, user/password and credentials file")
	}
	return o.Namespaces.Validate()
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// url is the comma-separated server list for nats.Connect.
func (o *NATSOptions) url() string {
	var parts []string
	for _, u := range o.URLs {
		for p := range strings.SplitSeq(u, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
	}
	return strings.Join(parts, ",")
}

// redactedURL is url() without credentials, for log lines and errors.
func (o *NATSOptions) redactedURL() string {
	var parts []string
	for p := range strings.SplitSeq(o.url(), ",") {
		if scheme, rest, ok := strings.Cut(p, "://"); ok {
			if _, host, ok := strings.Cut(rest, "@"); ok {
				p = scheme + "://***@" + host
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// connect dials NATS with the options' credentials and TLS, retrying
// when WaitForNATS is set. Reconnection after the first success is the
// client library's (forever, every ReconnectWait).
func (o *NATSOptions) connect(ctx context.Context, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.ConnectWait),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ReconnectJitter(o.ReconnectWait/5, o.ReconnectWait/5),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of waiting in memory (and maybe being lost).
		nats.ReconnectBufSize(-1),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(o.MaxPingsOutstanding),
	}
	switch {
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.User != "" || o.Password != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	opts = append(opts, extra...)
	url := o.url()
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			if v := nc.ConnectedServerVersion(); !serverKeepsOffsets(v) {
				o.Logger.Warn("this NATS server may give two publications one offset after a stream leader change "+
					"(nats-server issue 4320, fixed in v2.9.21): run v2.9.21 or later", "server_version", v)
			}
			return nc, nil
		}
		if !o.WaitForNATS {
			return nil, fmt.Errorf("nats: cannot connect to %s: %w", o.redactedURL(), err)
		}
		wait := min(o.ReconnectWait*time.Duration(attempt), 5*time.Second)
		o.Logger.Warn("NATS unreachable at start-up; retrying", "url", o.redactedURL(), "attempt", attempt, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats: gave up waiting for %s: %w (last error: %v)", o.redactedURL(), ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// minServerKeepingOffsets is the first nats-server that serializes
// Nats-Expected-Last-Subject-Sequence in a clustered stream (nats-server
// issue 4320, fixed by PR 4319 in v2.9.21). Before it, two nodes
// publishing one channel right after a stream leader change can both be
// acknowledged at the same offset, and one publication is then never
// delivered (found by bench/soak.sh against Debian 12's v2.9.10).
var minServerKeepingOffsets = [3]int{2, 9, 21}

// serverKeepsOffsets reports whether a nats-server of version v (as
// "2.9.10", maybe with a "-beta" suffix) is at least
// minServerKeepingOffsets. A version it cannot read is given the benefit
// of the doubt.
func serverKeepsOffsets(v string) bool {
	v, _, _ = strings.Cut(strings.TrimPrefix(v, "v"), "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return true
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return true
		}
		if n != minServerKeepingOffsets[i] {
			return n > minServerKeepingOffsets[i]
		}
	}
	return true
}

// Subject layout (prefix p, namespace ns, token t = base64url of the full
// channel name, unpadded — channel names may hold '.', which NATS reads
// as a token separator):
//
//	p.ch.ns.t        publications, stored in the namespace's stream
//	p.live.ns.t      live fan-out: the stream republishes each stored
//	                 publication here; join/leave go here directly
//	p.pr.ns.t.n.c    presence entry of client c (base64url) on node n
func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeToken(t string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return string(b), err
}

// namespaceOf is the part of a channel name before its first ':'.
func namespaceOf(channel string) (string, error) {
	ns, _, ok := strings.Cut(channel, ":")
	if !ok || !validNamespaceName(ns) {
		return "", fmt.Errorf("nats: channel %q has no valid namespace", channel)
	}
	return ns, nil
}

// stateName maps the client's connection status onto readiness words.
func stateName(s nats.Status) string {
	switch s {
	case nats.CONNECTED:
		return "connected"
	case nats.RECONNECTING, nats.DISCONNECTED:
		return "reconnecting"
	case nats.CONNECTING:
		return "connecting"
	case nats.DRAINING_SUBS, nats.DRAINING_PUBS:
		return "draining"
	case nats.CLOSED:
		return "closed"
	}
	return "unknown"
}

// ErrBrokerUnavailable is returned (wrapped) when NATS is not connected.
var ErrBrokerUnavailable = errors.New("broker unavailable: not connected to NATS")
