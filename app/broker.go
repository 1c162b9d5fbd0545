package app

import (
	"context"
	"fmt"
	"time"

	"github.com/duplex/duplex/realtime"
)

// brokerSweepInterval is how often expired history and idle channels are
// dropped from the memory broker.
const brokerSweepInterval = 30 * time.Second

// startBroker builds the broker chosen by BROKER, and with NATS the
// cluster-wide presence store, and sets how to report and close them.
func (a *App) startBroker(ctx context.Context) error {
	if a.cfg.Broker != "nats" {
		mem := realtime.NewMemoryBroker()
		a.broker = mem
		a.brokerState = func() (string, bool) { return "memory", true }
		a.closeBroker = mem.StartSweeper(brokerSweepInterval)
		return nil
	}

	n := a.cfg.NATS
	broker, err := realtime.NewNATSBroker(ctx, realtime.NATSOptions{
		URLs: n.URLs, Token: n.Token, User: n.User, Password: n.Password, CredsFile: n.CredsFile,
		CAFile: n.CAFile, CertFile: n.CertFile, KeyFile: n.KeyFile,
		Prefix: n.Prefix, WaitForNATS: n.Startup == "wait", Replicas: n.Replicas,
		PingInterval: n.PingInterval, MaxPingsOutstanding: n.MaxPingsOutstanding,
		Namespaces: a.cfg.Namespaces, Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("nats broker: %w", err)
	}
	presence, err := realtime.NewNATSPresence(ctx, broker, realtime.NATSPresenceOptions{TTL: n.PresenceTTL})
	if err != nil {
		broker.Close()
		return fmt.Errorf("nats presence: %w", err)
	}
	a.broker, a.presence = broker, presence
	a.brokerState = func() (string, bool) { return broker.State(), broker.Healthy() }
	a.closeBroker = func() {
		presence.Close() // it shares the broker's connection
		broker.Close()
	}
	a.log.Info("connected to NATS", "node", presence.NodeID(), "state", broker.State())
	return nil
}
