// Package bpfrun reads what BPF programs and the machine spent, for benchmarks that report
// podnet's cost as differences within one run (the kernel's BPF run statistics, which the
// benchmark turns on, and /proc/stat).
package bpfrun

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// Stats are a program's run time and run count since it was loaded (while statistics were on).
type Stats struct{ NS, Runs uint64 }

// Of reads p's statistics.
func Of(tb testing.TB, p *ebpf.Program) Stats {
	tb.Helper()
	st, err := p.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	return Stats{NS: uint64(st.Runtime.Nanoseconds()), Runs: st.RunCount}
}

// Add is the statistics of two programs together.
func (s Stats) Add(o Stats) Stats { return Stats{NS: s.NS + o.NS, Runs: s.Runs + o.Runs} }

// PerRun is the run time per run between two reads (0 when it did not run).
func PerRun(before, after Stats) float64 {
	if after.Runs == before.Runs {
		return 0
	}
	return float64(after.NS-before.NS) / float64(after.Runs-before.Runs)
}

// BusyTicks is the machine's non-idle CPU time since boot in USER_HZ ticks (/proc/stat).
func BusyTicks(tb testing.TB) uint64 {
	tb.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy uint64
	for i, f := range strings.Fields(line)[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; steal and guest time are not this machine's work
			continue
		}
		n, _ := strconv.ParseUint(f, 10, 64)
		busy += n
	}
	return busy
}
