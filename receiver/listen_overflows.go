//go:build linux

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

// listenSeries is a listening port's drops as the last scan read them: cumulative since its
// listener was created, so a value that falls means a new listener, and a new start time.
type listenSeries struct {
	start, updated pcommon.Timestamp
	local          *localEnd
	drops          int64
}

// setListenDrops takes one listener scan: every listening socket with its drops, summed per
// local end and port (SO_REUSEPORT listeners share one). A listener first seen (or seen again
// with fewer drops: a new one) starts at the previous scan (since), not at this one: a first
// point must not cover a zero-length window.
func (m *connectionMetrics) setListenDrops(scan []bpf.PodnetListenDrops, local func(resourceKey) *localEnd, since, now pcommon.Timestamp) {
	sums := map[listenKey]int64{}
	for i := range scan {
		r := &scan[i]
		sums[listenKey{res: resourceKey{netnsIno: r.NetnsIno, cgroupID: r.CgroupId}, port: r.Port}] += int64(r.Drops)
	}
	for k, drops := range sums {
		s := m.listens[k]
		if s == nil {
			s = &listenSeries{start: since}
			m.listens[k] = s
		} else if drops < s.drops {
			s.start = since
		}
		s.drops, s.updated, s.local = drops, now, namedOver(s.local, local(k.res))
	}
}

// recordListens records the listening ports of one local end.
func (m *connectionMetrics) recordListens(now pcommon.Timestamp, keys []listenKey) {
	for _, k := range keys {
		s := m.listens[k]
		m.mb.Reset(metadata.WithStartTime(s.start))
		m.mb.RecordPodnetTCPListenOverflowsDataPoint(now, s.drops, int64(k.port))
	}
}
