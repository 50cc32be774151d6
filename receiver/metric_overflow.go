//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
)

// overflowAttribute marks the overflow series, as the OpenTelemetry SDKs mark theirs when an
// instrument reaches its cardinality limit: the series carries this attribute alone.
const overflowAttribute = "otel.metric.overflow"

// overflowKey is the series that new series fold into once max_metric_series are live: their
// counts are kept (sums over all series stay exact), only their attributes are given up. Its
// local end is the node (connectionMetrics.node). The in-kernel aggregation folds the same
// way when its table is full within one interval (bpf/aggregate.h), and the drain adds that
// here (foldAggregate).
var overflowKey = seriesKey{overflow: true}

// live is the number of series that count against max_metric_series: all but the overflow one
// and the retired.
func (m *connectionMetrics) live() int {
	n := len(m.series) - m.retired
	if s, ok := m.series[overflowKey]; ok && !s.retired {
		n--
	}
	return n
}

// foldAggregate adds the kernel's overflow entry: what keys that found the in-kernel table full
// counted since the last drain.
func (m *connectionMetrics) foldAggregate(v *bpf.PodnetAggValue, since, now pcommon.Timestamp) {
	if *v == (bpf.PodnetAggValue{}) {
		// The entry is in every interval map, counted into or not: an empty one neither
		// creates the series nor keeps it from going idle and retiring like any other.
		return
	}
	s := m.series[overflowKey]
	if s == nil {
		s = &series{start: since}
		m.series[overflowKey] = s
	}
	m.revive(s)
	s.updated, s.local = now, m.node
	// Not on the service graph: the kernel's entry keeps neither roles nor names, so which of
	// its connections had an edge is unknown (see README, service graph).
	addValue(s, v)
}

// emitOverflow appends the overflow series to md: each metric once, under the node's Resource,
// with otel.metric.overflow=true as its only attribute. Failed connects, close reasons and the
// other splits are summed into the one data point per metric.
func (m *connectionMetrics) emitOverflow(md pmetric.Metrics, now pcommon.Timestamp, emitted map[seriesOwner]pmetric.ResourceMetrics) {
	s := m.series[overflowKey]
	if s == nil || s.retired {
		return
	}
	// The builder's data points need their attributes; they are replaced below.
	role, netType := metadata.AttributePodnetConnectionRoleClient, metadata.AttributeNetworkTypeIpv4
	m.mb.Reset(metadata.WithStartTime(startedBy(&s.start, now)))
	if s.connections > 0 {
		m.mb.RecordPodnetTCPConnectionsDataPoint(now, s.connections, role, netType, "", 0)
	}
	if s.synRetransmits > 0 {
		m.mb.RecordPodnetTCPSynRetransmitsDataPoint(now, s.synRetransmits, role, netType, "", 0)
	}
	if m.countsActive {
		m.mb.RecordPodnetTCPConnectionsActiveDataPoint(now, s.active, role, netType, "", 0)
	}
	if s.closed > 0 {
		m.mb.RecordPodnetTCPConnectionsClosedDataPoint(now, s.closed, role, netType, "", 0, metadata.AttributePodnetTCPCloseReasonNormal)
		m.mb.RecordPodnetTCPConnectionDurationDataPoint(now, float64(s.durationNs)/1e9, role, netType, "", 0)
	}
	if s.closed > 0 || s.active > 0 || s.bytesSent > 0 || s.bytesReceived > 0 || s.retransmits > 0 {
		m.mb.RecordPodnetTCPBytesSentDataPoint(now, s.bytesSent, role, netType, "", 0)
		m.mb.RecordPodnetTCPBytesReceivedDataPoint(now, s.bytesReceived, role, netType, "", 0)
		m.mb.RecordPodnetTCPRetransmitsDataPoint(now, s.retransmits, role, netType, "", 0)
	}
	overflow := m.mb.Emit(metadata.WithResource(m.node.res))
	markOverflow(overflow)
	takeInto(md, emitted, overflowKey.res, overflow)
	m.emitHandshakes(md, now, map[seriesOwner][]seriesKey{overflowKey.res: {overflowKey}},
		latestNames{overflowKey.res: {m.node, now}}, emitted)
}

// markOverflow makes otel.metric.overflow=true the only attribute of every sum data point in md.
func markOverflow(md pmetric.Metrics) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, metric := range sm.Metrics().All() {
				for _, dp := range metric.Sum().DataPoints().All() {
					dp.Attributes().Clear()
					dp.Attributes().PutBool(overflowAttribute, true)
				}
			}
		}
	}
}
