package podnetreceiver

import (
	"maps"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// point is one data point's value, found by resource netns, metric name and attributes.
func point(t *testing.T, all []pmetric.Metrics, netns uint32, name string, match map[string]any) (float64, bool) {
	t.Helper()
	var last float64
	found := false
	for _, md := range all {
		// Cumulative: the last emission holds the total. Within one, the closed count of every
		// close reason adds up when match does not name one.
		var sum float64
		inEmission := false
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			ino, _ := rm.Resource().Attributes().Get("podnet.netns.inode")
			if ino.Int() != int64(netns) {
				continue
			}
			ms := rm.ScopeMetrics().At(0).Metrics()
			for j := 0; j < ms.Len(); j++ {
				m := ms.At(j)
				if m.Name() != name {
					continue
				}
				dps := m.Sum().DataPoints()
				for k := 0; k < dps.Len(); k++ {
					dp := dps.At(k)
					if !attrsMatch(dp.Attributes().AsRaw(), match) {
						continue
					}
					inEmission = true
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						sum += float64(dp.IntValue())
					} else {
						sum += dp.DoubleValue()
					}
				}
			}
		}
		if inEmission {
			last, found = sum, true
		}
	}
	return last, found
}

// attrsMatch: the attributes are match's, but for a close reason match does not name.
func attrsMatch(attrs, match map[string]any) bool {
	if _, named := match["podnet.tcp.close.reason"]; !named {
		if _, ok := attrs["podnet.tcp.close.reason"]; ok {
			attrs = maps.Clone(attrs)
			delete(attrs, "podnet.tcp.close.reason")
		}
	}
	if len(attrs) != len(match) {
		return false
	}
	for k, v := range match {
		if attrs[k] != v {
			return false
		}
	}
	return true
}

// pointSpan is a data point's start and time.
type pointSpan struct{ start, at pcommon.Timestamp }

// pointSpans are the start and time of every data point of a sum or histogram metric.
func pointSpans(m pmetric.Metric) []pointSpan {
	var out []pointSpan
	switch m.Type() {
	case pmetric.MetricTypeSum:
		for _, dp := range m.Sum().DataPoints().All() {
			out = append(out, pointSpan{dp.StartTimestamp(), dp.Timestamp()})
		}
	case pmetric.MetricTypeHistogram:
		for _, dp := range m.Histogram().DataPoints().All() {
			out = append(out, pointSpan{dp.StartTimestamp(), dp.Timestamp()})
		}
	}
	return out
}

// pointTimes are the timestamps of every data point in md.
func pointTimes(md pmetric.Metrics) []pcommon.Timestamp {
	var out []pcommon.Timestamp
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				for _, p := range pointSpans(m) {
					out = append(out, p.at)
				}
			}
		}
	}
	return out
}
