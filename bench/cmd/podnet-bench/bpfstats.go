package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bench/internal/agentproc"
)

// bpfRun is what podnet's BPF programs ran during one run's window, from the kernel's run
// statistics: the CPU podnet costs inside the observed workloads' own syscalls and softirqs,
// which the agent's process CPU does not include.
type bpfRun struct {
	runTime   time.Duration
	runs      uint64
	byProgram map[string]time.Duration // kernel program name → run time
}

// bpfSince is the difference between two reads of the same agent's programs.
func bpfSince(before, after map[ebpf.ProgramID]agentproc.BPFProgram) bpfRun {
	r := bpfRun{byProgram: map[string]time.Duration{}}
	for id, a := range after {
		b := before[id] // zero if the program was loaded during the window
		r.runTime += a.RunTime - b.RunTime
		r.runs += a.Runs - b.Runs
		r.byProgram[a.Name] += a.RunTime - b.RunTime
	}
	return r
}

// perConn is µs of BPF run time per connection.
func (r bpfRun) perConn(conns int64) float64 {
	return float64(r.runTime) / 1e3 / float64(conns)
}

// bpfByProgram is the median µs per connection of each program over the pairs, largest first.
func bpfByProgram(pairs []pair) string {
	per := map[string][]float64{}
	for _, p := range pairs {
		for name, d := range p.podnet.agent.bpf.byProgram {
			per[name] = append(per[name], float64(d)/1e3/float64(p.podnet.load.Connections))
		}
	}
	med := map[string]float64{}
	for name, v := range per {
		med[name] = spreadOf(v).med
	}
	names := slices.SortedFunc(maps.Keys(med), func(a, b string) int {
		return cmp.Or(cmp.Compare(med[b], med[a]), strings.Compare(a, b))
	})
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.3f", n, med[n]))
	}
	return strings.Join(parts, ", ")
}
