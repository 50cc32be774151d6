package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/bench/internal/agentstats"
)

func TestSpreadOf(t *testing.T) {
	assert.Equal(t, spread{n: 3, med: 2, min: 1, max: 9}, spreadOf([]float64{9, 1, 2}))
	assert.Equal(t, spread{n: 4, med: 2.5, min: 1, max: 9}, spreadOf([]float64{9, 3, 1, 2}))
	assert.Equal(t, spread{}, spreadOf(nil))
}

// timedRun builds one timed run: conns connections in one second, p99 in µs.
func timedRun(conns int64, p99us int, agent *agentRun, foreign int) run {
	return run{load: loadResult{Connections: conns, Elapsed: time.Second, P50: 10 * time.Microsecond, P99: time.Duration(p99us) * time.Microsecond}, agent: agent, foreign: foreign}
}

// Ratios are podnet over baseline within each pair; a pair with another podnet attached is
// left out of the medians, not of the loss counts; the verdicts say by how much a target is missed.
func TestSummarizeAndVerdicts(t *testing.T) {
	agent := &agentRun{
		cpu: 100 * time.Millisecond, hwm: 2048, bpf: bpfRun{runTime: 3 * time.Millisecond},
		counters: agentstats.Counters{EventsReceived: 4000, EventsLost: 2, RecursionMisses: 1},
	}
	pairs := []pair{
		{base: timedRun(1000, 100, nil, 0), podnet: timedRun(980, 102, agent, 0)},
		{base: timedRun(1000, 100, nil, 0), podnet: timedRun(960, 110, agent, 0)},
		{base: timedRun(1000, 100, nil, 1), podnet: timedRun(500, 900, agent, 0)}, // contaminated
	}
	sc := scenario{name: "logs+metrics", targets: targets{minRate: 0.99, maxP99: 1.05, zeroLoss: true}}
	s := summarize(sc, goWorkload{}, pairs)

	assert.Equal(t, 1, s.contaminated)
	assert.InDelta(t, 0.97, s.rate.med, 1e-9)
	assert.InDelta(t, 0.96, s.rate.min, 1e-9)
	assert.InDelta(t, 1.06, s.p99.med, 1e-9)
	assert.InDelta(t, (100e3/980+100e3/960)/2, s.cpuPer1k.med, 1e-9, "ms of podnet CPU per 1k connections")
	assert.InDelta(t, (3000.0/980+3000.0/960)/2, s.bpfPerConn.med, 1e-9, "µs of BPF run time per connection")
	assert.InDelta(t, (4000.0/980+4000.0/960)/2, s.eventsPerConn.med, 1e-9)
	assert.Equal(t, int64(6), s.lost, "our agent's losses count in every pair, the contaminated one's too")
	assert.Equal(t, []string{
		"rate ratio 0.970 (target ≥ 0.99): MISSED by 2.0%",
		"p99 ratio 1.060 (target ≤ 1.05): MISSED by 1.0%",
		"zero reserve failures: MISSED: 6 events lost",
	}, s.verdicts())

	// Every pair contaminated: nothing is left out (the report flags them instead).
	for i := range pairs {
		pairs[i].base.foreign = 1
	}
	assert.Equal(t, 3, summarize(sc, goWorkload{}, pairs).contaminated)
	assert.InDelta(t, 0.96, summarize(sc, goWorkload{}, pairs).rate.med, 1e-9)
}

// A workload that measures no latency (loadgen) has no p50/p99 ratios, rather than 0/0.
func TestSummarizeWithoutLatency(t *testing.T) {
	noLatency := func(conns int64, agent *agentRun) run {
		return run{load: loadResult{Connections: conns, Elapsed: time.Second}, agent: agent}
	}
	agent := &agentRun{}
	pairs := []pair{{base: noLatency(1000, nil), podnet: noLatency(990, agent)}}
	sc := scenario{name: "metrics-only", targets: targets{minRate: 0.99, maxP99: 1.02}}
	s := summarize(sc, loadgenWorkload{}, pairs)

	assert.Equal(t, "—", s.p50.format("%.3f"))
	assert.Equal(t, "—", s.p99.format("%.3f"))
	assert.Equal(t, []string{
		"rate ratio 0.990 (target ≥ 0.99): met",
		"p99 ratio: not measured (the workload reports no latency)",
	}, s.verdicts())
}

// The distribution-free interval for a median: x(k)..x(n-k+1) with the published ranks
// (e.g. Conover, Practical Nonparametric Statistics, table A3, 95%).
func TestMedianCIRank(t *testing.T) {
	for n, k := range map[int]int{1: 0, 5: 0, 6: 1, 8: 1, 9: 2, 12: 3, 16: 4, 20: 6, 30: 10} {
		assert.Equal(t, k, medianCIRank(n), "n=%d", n)
	}
	s := spreadOf([]float64{9, 1, 2, 8, 3, 7, 4, 6, 5}) // n=9: x(2)..x(8)
	assert.True(t, s.hasCI)
	assert.Equal(t, [2]float64{2, 8}, [2]float64{s.lo, s.hi})
	assert.False(t, spreadOf([]float64{1, 2, 3, 4, 5}).hasCI)
}

// With an interval, a median near the target is called within noise, on whichever side.
func TestVerdictWithInterval(t *testing.T) {
	assert.Equal(t, "rate ratio 0.985, 95% CI 0.960–1.004 (target ≥ 0.99): missed by the median by 0.5%, within noise (the interval holds the target)",
		verdict("rate ratio", spread{med: 0.985, lo: 0.96, hi: 1.004, hasCI: true}, 0.99, "≥"))
	assert.Equal(t, "rate ratio 0.995, 95% CI 0.960–1.004 (target ≥ 0.99): met by the median, within noise (the interval holds the target)",
		verdict("rate ratio", spread{med: 0.995, lo: 0.96, hi: 1.004, hasCI: true}, 0.99, "≥"))
	assert.Equal(t, "rate ratio 0.900, 95% CI 0.880–0.930 (target ≥ 0.97): MISSED by 7.2%",
		verdict("rate ratio", spread{med: 0.9, lo: 0.88, hi: 0.93, hasCI: true}, 0.97, "≥"))
	assert.Equal(t, "p99 ratio 1.000, 95% CI 0.950–1.010 (target ≤ 1.02): met",
		verdict("p99 ratio", spread{med: 1, lo: 0.95, hi: 1.01, hasCI: true}, 1.02, "≤"))
	assert.Equal(t, "p99 ratio 1.300, 95% CI 1.010–1.500 (target ≤ 1.05): missed by the median by 23.8%, within noise (the interval holds the target)",
		verdict("p99 ratio", spread{med: 1.3, lo: 1.01, hi: 1.5, hasCI: true}, 1.05, "≤"))
}
