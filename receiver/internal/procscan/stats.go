package procscan

import (
	"sync/atomic"
	"time"
)

// Stats are the Scanner's running totals, for the receiver's own telemetry.
type Stats struct {
	// Scans counts completed scans, failed ones included; Rescans those of them that a
	// lookup miss triggered.
	Scans, Rescans uint64
	// ScanErrors counts scans that failed as a whole and kept the previous snapshot.
	ScanErrors uint64
	// PermissionDenied counts processes skipped, scan after scan, because their namespace
	// link was unreadable.
	PermissionDenied uint64
	// LastScanDuration and TotalScanDuration time the scans (failed ones too).
	LastScanDuration, TotalScanDuration time.Duration
	// Cgroups and Netns are the sizes of the current snapshot's maps.
	Cgroups, Netns int
}

type counters struct {
	scans, rescans, scanErrors, denied atomic.Uint64
	lastNanos, totalNanos              atomic.Int64
}

func (c *counters) observe(d time.Duration, err error, denied int) {
	c.scans.Add(1)
	if err != nil {
		c.scanErrors.Add(1)
	}
	c.denied.Add(uint64(denied))
	c.lastNanos.Store(int64(d))
	c.totalNanos.Add(int64(d))
}

// Stats returns the running totals. Safe for concurrent use.
func (s *Scanner) Stats() Stats {
	st := Stats{
		Scans:             s.stats.scans.Load(),
		Rescans:           s.stats.rescans.Load(),
		ScanErrors:        s.stats.scanErrors.Load(),
		PermissionDenied:  s.stats.denied.Load(),
		LastScanDuration:  time.Duration(s.stats.lastNanos.Load()),
		TotalScanDuration: time.Duration(s.stats.totalNanos.Load()),
	}
	if snap := s.snap.Load(); snap != nil {
		st.Cgroups, st.Netns = len(snap.cgroups), len(snap.netns)
	}
	return st
}
