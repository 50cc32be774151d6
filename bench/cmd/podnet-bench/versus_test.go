package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// podnetPair is a pair whose podnet run made 1000 connections in a second, with bpf and cpu µs
// of BPF and collector run time per connection.
func podnetPair(bpf, cpu float64, foreign int) pair {
	ag := &agentRun{cpu: time.Duration(cpu * 1000 * 1e3), bpf: bpfRun{runTime: time.Duration(bpf * 1000 * 1e3)}}
	return pair{
		base:   run{load: loadResult{Connections: 1000, Elapsed: time.Second}},
		podnet: run{load: loadResult{Connections: 1000, Elapsed: time.Second}, agent: ag, foreign: foreign},
	}
}

// A scenario is compared with the one it names on the same workload, pair i with pair i; a
// pair with another podnet attached to either side is left out.
func TestComparisons(t *testing.T) {
	on := scenario{name: "on", versus: "off"}
	off := scenario{name: "off"}
	w, other := loadgenWorkload{}, goWorkload{mode: modeConnect}
	sums := []summary{
		summarize(off, w, []pair{podnetPair(3, 0.5, 0), podnetPair(3.2, 0.4, 0), podnetPair(3, 0.5, 0)}),
		summarize(on, w, []pair{podnetPair(3.5, 0.5, 0), podnetPair(3.6, 0.6, 0), podnetPair(9, 9, 1)}),
		{scenario: off, workload: other, failed: assert.AnError},
		summarize(on, other, []pair{podnetPair(1, 1, 0)}),
	}
	cs := comparisons(sums)
	require.Len(t, cs, 1)
	c := cs[0]
	assert.Equal(t, 2, c.pairs)
	assert.InDelta(t, 3.55, c.bpfThis.med, 1e-9)
	assert.InDelta(t, 3.1, c.bpfThat.med, 1e-9)
	assert.InDelta(t, 0.45, c.bpfDiff.med, 1e-9)
	assert.InDelta(t, 0.4, c.bpfDiff.min, 1e-9)
	assert.InDelta(t, (3.5/3+3.6/3.2)/2, c.bpfRatio.med, 1e-9)
	assert.InDelta(t, 0.1, c.cpuDiff.med, 1e-9)
	assert.InDelta(t, 1.0, c.rate.med, 1e-9)
}
