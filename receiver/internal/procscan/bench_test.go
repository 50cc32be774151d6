package procscan

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLookup measures the per-event cost on the receiver's read loop: a hit by cgroup,
// the common case for pod sockets.
func BenchmarkLookup(b *testing.B) {
	h := newFakeHost(b)
	id := h.addCgroup("/kubepods.slice/kubepods-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope")
	s := h.scanner()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Lookup(fakeHostNS, id); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkScan measures one full scan of this machine's /proc and cgroup2 hierarchy.
func BenchmarkScan(b *testing.B) {
	if err := CheckProcRoot("/proc"); err != nil {
		b.Skip(err)
	}
	s, err := New(Config{RefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.scan(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats()
	b.ReportMetric(float64(st.Netns), "netns")
	b.ReportMetric(float64(st.Cgroups), "cgroups")
}
