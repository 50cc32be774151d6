package procscan

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// BenchmarkScan measures one full scan of this machine's /proc and cgroup2 hierarchy, in wall
// time (ns/op) and in this process's CPU time (cpu-ns/op: most of a scan is system calls).
func BenchmarkScan(b *testing.B) {
	if err := CheckProcRoot("/proc"); err != nil {
		b.Skip(err)
	}
	s, err := New(Config{RefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := processCPU(b)
	for b.Loop() {
		if err := s.scan(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-before)/float64(b.N), "cpu-ns/op")
	st := s.Stats()
	b.ReportMetric(float64(st.Netns), "netns")
	b.ReportMetric(float64(st.Cgroups), "cgroups")
}

// processCPU is this process's user+system CPU time in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
