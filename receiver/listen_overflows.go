//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
)

// listenKey is a listening port of a local end: podnet.tcp.listen.overflows' series.
type listenKey struct {
	res  resourceKey
	port uint16
}

// ownedListen is a listening port of a local end, and which workload had the end
// (seriesOwners): a listen.overflows series.
type ownedListen struct {
	owner seriesOwner
	port  uint16
}

// listenSeries is a listening port's overflows since Start or since podnet first saw it (listen_overflow_ledger.go):
// a listener that closes and listens again at the same port continues the count, also after
// its series retired (idle past metric_series_idle_expiry: no longer emitted, kept).
type listenSeries struct {
	start, updated pcommon.Timestamp
	local          *localEnd
	drops          int64
	retired        bool
}

// setListenOverflows takes one listener scan's overflows per listening port (SO_REUSEPORT
// listeners share one). A port first seen starts at the previous scan (since), not at this one:
// a first point must not cover a zero-length window.
func (m *connectionMetrics) setListenOverflows(overflows map[listenKey]int64, local func(resourceKey) *localEnd, since, now pcommon.Timestamp) {
	for lk, n := range overflows {
		l := local(lk.res)
		k := ownedListen{m.owners.of(l), lk.port}
		if !m.listenPort {
			k.port = 0 // server.port dropped: one series per local end, from one start
		}
		s := m.listens[k]
		if s == nil {
			s = &listenSeries{start: since}
			m.listens[k] = s
		}
		if s.retired { // listening again: from its start time and count, as Prometheus expects
			s.retired = false
			m.retiredListens--
		}
		s.drops += n
		s.updated, s.local = now, namedOver(s.local, l)
	}
}

// recordListens records the listening ports of one local end.
func (m *connectionMetrics) recordListens(now pcommon.Timestamp, keys []ownedListen) {
	for _, k := range keys {
		s := m.listens[k]
		m.mb.Reset(metadata.WithStartTime(startedBy(&s.start, now)))
		m.mb.RecordPodnetTCPListenOverflowsDataPoint(now, s.drops, int64(k.port))
	}
}

// retireIdleListens retires the listen series idle past expiry (their listener gone: each scan
// updates every listening port) and keeps at most max of the retired ones, the most recently
// updated: a listener that comes back after its series retired continues it. (Deleted, it
// started over from 0 with a new start time, which Prometheus, ignoring start times, reads as
// a counter reset: found by an independent check, 6 then 3 read as 7.18 instead of 9.)
func (m *connectionMetrics) retireIdleListens(now pcommon.Timestamp) {
	for _, s := range m.listens {
		if !s.retired && now.AsTime().Sub(s.updated.AsTime()) > m.expiry {
			s.retired = true
			m.retiredListens++
		}
	}
	if m.retiredListens <= m.max {
		return
	}
	m.retiredListens -= forgetOldest(m.listens, m.max, func(_ ownedListen, s *listenSeries) (pcommon.Timestamp, bool) {
		return s.updated, s.retired
	})
}

// listenBaseline scans the listeners as the programs begin counting: listen.overflows counts
// from there (overflowLedger.prime). nil when the metric is not emitted, or the scan failed
// (the first interval's scan then says why, and counts from the listeners' creation).
func (r *podnetReceiver) listenBaseline(k kernelSource) []bpf.PodnetListenDrops {
	if r.metrics == nil || !r.cfg.Metrics.PodnetTCPListenOverflows.Enabled || k.IteratorsUnavailable() != nil {
		return nil
	}
	scan, err := listenScan(k)
	if err != nil {
		return nil
	}
	return scan
}
