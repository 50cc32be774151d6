package main

import (
	"maps"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// netnsCount counts what podnet reported for one network namespace (the full-load harness's):
// log records by EventName, and the last cumulative connection counts by metric and role. The
// rest of the machine's traffic is left out, so the harness can compare with its own counts.
type netnsCount struct {
	ino     int64 // 0: count nothing
	mu      sync.Mutex
	events  map[string]int64
	metrics map[string]int64 // "<metric>/<role>": cumulative value at the last emission
}

func newNetnsCount(ino int64) *netnsCount {
	return &netnsCount{ino: ino, events: map[string]int64{}, metrics: map[string]int64{}}
}

func (n *netnsCount) ours(res pcommon.Resource) bool {
	v, ok := res.Attributes().Get("podnet.netns.inode")
	return n.ino != 0 && ok && v.Int() == n.ino
}

func (n *netnsCount) addLogs(ld plog.Logs) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, rl := range ld.ResourceLogs().All() {
		if !n.ours(rl.Resource()) {
			continue
		}
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				n.events[lr.EventName()]++
			}
		}
	}
}

// addMetrics keeps, per metric and role, the sum over this namespace's series in the batch: every
// emission carries every live series' cumulative value, so the last one holds the totals.
func (n *netnsCount) addMetrics(md pmetric.Metrics) {
	sums := map[string]int64{}
	for _, rm := range md.ResourceMetrics().All() {
		if !n.ours(rm.Resource()) {
			continue
		}
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Type() != pmetric.MetricTypeSum {
					continue
				}
				for _, dp := range m.Sum().DataPoints().All() {
					role, _ := dp.Attributes().Get("podnet.connection.role")
					sums[m.Name()+"/"+role.Str()] += dp.IntValue()
				}
			}
		}
	}
	if len(sums) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.metrics = sums
}

func (n *netnsCount) snapshot() (events, metrics map[string]int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.events), maps.Clone(n.metrics)
}
