package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// sseMetrics are the SSE transport's collectors: its streams are counted
// apart from WebSockets (both count against MAX_CONNECTIONS).
type sseMetrics struct {
	streamsOpen  prometheus.Gauge
	streamsTotal prometheus.Counter
	closesSent   *prometheus.CounterVec
	emits        *prometheus.CounterVec
}

func newSSEMetrics(r *prometheus.Registry) sseMetrics {
	m := sseMetrics{
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "duplex_sse_streams_open", Help: "SSE streams (GET /realtime/sse) open now."}),
		streamsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duplex_sse_streams_total", Help: "SSE streams opened."}),
		closesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duplex_sse_close_events_sent_total", Help: "Close events sent on SSE streams, by close code."}, []string{"code"}),
		emits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duplex_sse_emits_total", Help: "POST /realtime/emit requests, by HTTP status."}, []string{"status"}),
	}
	r.MustRegister(m.streamsOpen, m.streamsTotal, m.closesSent, m.emits)
	return m
}

// StreamOpened and StreamClosed bracket each SSE stream.
func (m *Metrics) StreamOpened() { m.sse.streamsOpen.Inc(); m.sse.streamsTotal.Inc() }
func (m *Metrics) StreamClosed() { m.sse.streamsOpen.Dec() }

// StreamCloseSent counts a close event sent on an SSE stream.
func (m *Metrics) StreamCloseSent(code int) {
	m.sse.closesSent.WithLabelValues(strconv.Itoa(code)).Inc()
}

// EmitAnswered counts an emit by its status.
func (m *Metrics) EmitAnswered(status int) { m.sse.emits.WithLabelValues(strconv.Itoa(status)).Inc() }
