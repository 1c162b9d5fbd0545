package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duplex/duplex/realtime"
)

// WatchHub exposes the hub's counters, read at scrape time. Call it once,
// before serving /metrics.
func (m *Metrics) WatchHub(hub *realtime.Hub) {
	counter := func(name, help string, read func(realtime.HubStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(read(hub.Stats())) })
	}
	m.registry.MustRegister(
		counter("duplex_realtime_publications_total", "Publications fanned out on this node.",
			func(s realtime.HubStats) uint64 { return s.Publications }),
		counter("duplex_realtime_deliveries_total", "Frames handed to subscribers' send queues.",
			func(s realtime.HubStats) uint64 { return s.Deliveries }),
		counter("duplex_realtime_dropped_total", "Frames dropped by drop-oldest queues of slow subscribers.",
			func(s realtime.HubStats) uint64 { return s.Dropped }),
		counter("duplex_realtime_refused_total", "Deliveries refused: a full queue under the disconnect policy, or a closing connection.",
			func(s realtime.HubStats) uint64 { return s.Refused }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "duplex_realtime_channels", Help: "Channels with subscribers on this node."},
			func() float64 { return float64(len(hub.Channels())) }),
	)
}
