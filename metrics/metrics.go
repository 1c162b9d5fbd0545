// Package metrics exposes duplex's Prometheus metrics. It has its own
// registry, so tests and several servers in one process do not collide.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duplex/duplex/wsconn"
)

// Metrics holds every collector. All methods are safe for concurrent use.
type Metrics struct {
	registry       *prometheus.Registry
	connsOpen      prometheus.Gauge
	connsTotal     prometheus.Counter
	messagesIn     prometheus.Counter
	messagesOut    prometheus.Counter
	bytesIn        prometheus.Counter
	bytesOut       prometheus.Counter
	upgradeRefused *prometheus.CounterVec
	closesSent     *prometheus.CounterVec
	sse            sseMetrics
}

var _ wsconn.Observer = (*Metrics)(nil)

// New registers every collector, plus the Go runtime and process ones.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "duplex_websocket_connections_open", Help: "WebSocket connections open now."}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_websocket_connections_total", Help: "WebSocket connections accepted."}),
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_websocket_messages_received_total", Help: "Data messages received from clients."}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_websocket_messages_sent_total", Help: "Data messages sent to clients."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_websocket_received_bytes_total", Help: "Payload bytes received from clients."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_websocket_sent_bytes_total", Help: "Payload bytes sent to clients."}),
		upgradeRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duplex_websocket_upgrades_refused_total", Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}),
		closesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duplex_websocket_close_frames_sent_total", Help: "Close frames sent to clients, by close code."}, []string{"code"}),
	}
	m.registry.MustRegister(m.connsOpen, m.connsTotal, m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut,
		m.upgradeRefused, m.closesSent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sse = newSSEMetrics(m.registry)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// UpgradeRefused counts an upgrade turned away before it happened.
func (m *Metrics) UpgradeRefused(reason string) { m.upgradeRefused.WithLabelValues(reason).Inc() }

func (m *Metrics) ConnOpened()      { m.connsOpen.Inc(); m.connsTotal.Inc() }
func (m *Metrics) ConnClosed()      { m.connsOpen.Dec() }
func (m *Metrics) MessageIn(n int)  { m.messagesIn.Inc(); m.bytesIn.Add(float64(n)) }
func (m *Metrics) MessageOut(n int) { m.messagesOut.Inc(); m.bytesOut.Add(float64(n)) }
func (m *Metrics) CloseSent(code wsconn.CloseCode) {
	m.closesSent.WithLabelValues(strconv.Itoa(int(code))).Inc()
}
