//go:build linux && (amd64 || arm64)

package podnetreceiver

import "go.opentelemetry.io/collector/pdata/pcommon"

// settleActive ends a drain: when it was complete, every series' active becomes what the
// drain reported for it (0 when it reported nothing: none of its connections is open). An
// incomplete drain changes nothing, so a failed read never shows open connections as
// gone. A series whose count drops to 0 is kept for the idle expiry from now, so the 0 is
// emitted; while its count is above 0 it never expires.
func (m *connectionMetrics) settleActive(complete bool, now pcommon.Timestamp) {
	for _, s := range m.series {
		if complete {
			if s.active > 0 && s.drained == 0 {
				s.updated = now
			}
			s.active = s.drained
		}
		s.drained = 0
	}
}
