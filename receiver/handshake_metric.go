//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	conventions "go.opentelemetry.io/otel/semconv/v1.38.0"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// handshakes is a series' handshake-duration histogram: counts per kernel.HandshakeBoundsMicros
// bucket and their sum. Written by hand, not by mdatagen: its histograms under metrics: do not
// compile (see PLATFORM), so this metric is switched by handshake_histogram, not metrics.<name>.
type handshakes struct {
	buckets [bpf.PodnetHandshakeHistogramHANDSHAKE_BUCKETS]uint64
	sumUs   uint64
}

func (h *handshakes) add(us uint32) {
	h.buckets[kernel.HandshakeBucket(us)]++
	h.sumUs += uint64(us)
}

func (h *handshakes) addAggregate(v *bpf.PodnetAggValue) {
	for i, n := range v.HandshakeBuckets {
		h.buckets[i] += uint64(n)
	}
	h.sumUs += v.HandshakeUs
}

func (h *handshakes) count() (n uint64) {
	for _, c := range h.buckets {
		n += c
	}
	return n
}

// handshakeBoundsSeconds are the histogram's explicit bounds as OTLP carries them.
var handshakeBoundsSeconds = func() []float64 {
	out := make([]float64, len(kernel.HandshakeBoundsMicros))
	for i, us := range kernel.HandshakeBoundsMicros {
		out[i] = float64(us) / 1e6
	}
	return out
}()

// addHandshake counts an open's handshake into its series (events mode).
func addHandshake(s *series, e *enrichedEvent) {
	if e.HandshakeMicros != 0 && (e.Type == event.Accept || (e.Type == event.Connect && !e.Failed())) {
		s.handshakes.add(e.HandshakeMicros)
	}
}

// emitHandshakes appends podnet.tcp.handshake.duration to md, for each local end whose series had
// handshakes: into the ResourceMetrics the builder emitted for it (emitted), or one of its own
// where it emitted none. (Appended as ResourceMetrics of their own, every Resource came twice
// in each export: found by an independent check.)
func (m *connectionMetrics) emitHandshakes(md pmetric.Metrics, now pcommon.Timestamp, byResource map[seriesOwner][]seriesKey,
	latest latestNames, emitted map[seriesOwner]pmetric.ResourceMetrics,
) {
	if !m.handshakeHistogram {
		return
	}
	for rk, keys := range byResource {
		var dps pmetric.HistogramDataPointSlice
		for _, k := range keys {
			s := m.series[k]
			n := s.handshakes.count()
			if n == 0 {
				continue
			}
			if dps == (pmetric.HistogramDataPointSlice{}) {
				dps = m.handshakeMetric(m.scopeOf(md, rk, latest, emitted))
			}
			dp := dps.AppendEmpty()
			dp.SetStartTimestamp(startedBy(&s.start, now))
			dp.SetTimestamp(now)
			dp.SetCount(n)
			dp.SetSum(float64(s.handshakes.sumUs) / 1e6)
			dp.ExplicitBounds().FromRaw(handshakeBoundsSeconds)
			dp.BucketCounts().FromRaw(s.handshakes.buckets[:])
			m.putSeriesAttributes(dp.Attributes(), k)
		}
	}
}

// scopeOf is the scope of the ResourceMetrics emitted for rk, or of a new one.
func (m *connectionMetrics) scopeOf(md pmetric.Metrics, rk seriesOwner, latest latestNames, emitted map[seriesOwner]pmetric.ResourceMetrics) pmetric.ScopeMetrics {
	if rm, ok := emitted[rk]; ok && rm.ScopeMetrics().Len() > 0 {
		return rm.ScopeMetrics().At(0)
	}
	rm := md.ResourceMetrics().AppendEmpty()
	rm.SetSchemaUrl(conventions.SchemaURL)
	latest[rk].local.res.CopyTo(rm.Resource())
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	sm.Scope().SetVersion(m.version)
	return sm
}

// handshakeMetric appends the histogram metric to sm and returns its data points.
func (m *connectionMetrics) handshakeMetric(sm pmetric.ScopeMetrics) pmetric.HistogramDataPointSlice {
	metric := sm.Metrics().AppendEmpty()
	metric.SetName("podnet.tcp.handshake.duration")
	metric.SetUnit("s")
	metric.SetDescription("How long handshakes took: SYN sent (client) or received (server) to ESTABLISHED, of the opens of each series (see the log attribute podnet.tcp.handshake.duration for how it is measured).")
	h := metric.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	return h.DataPoints()
}

// putSeriesAttributes writes what record() gives every data point of a series.
func (m *connectionMetrics) putSeriesAttributes(a pcommon.Map, k seriesKey) {
	if k.overflow {
		a.PutBool(overflowAttribute, true)
		return
	}
	if m.keep.role {
		a.PutStr("podnet.connection.role", k.role.String())
	}
	if m.keep.netType {
		netType := "ipv4"
		if k.ipv6 {
			netType = "ipv6"
		}
		a.PutStr("network.type", netType)
	}
	if m.keep.peer {
		a.PutStr("network.peer.address", m.names.addr(k.peer))
	}
	if m.keep.port {
		a.PutInt("server.port", int64(k.serverPort))
	}
	p := withBackend(k.peerID, k.backendID)
	if p.Namespace != "" {
		a.PutStr("podnet.peer.k8s.namespace.name", p.Namespace)
	}
	if p.PodName != "" {
		a.PutStr("podnet.peer.k8s.pod.name", p.PodName)
	}
	if p.ServiceName != "" {
		a.PutStr("podnet.peer.k8s.service.name", p.ServiceName)
	}
	if k.backend.IsValid() {
		a.PutStr("podnet.peer.backend.address", m.names.addr(k.backend))
	}
	if k.serverName != "" {
		a.PutStr("server.address", k.serverName)
	}
}
