package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/bench/internal/agentstats"
)

func TestSpreadOf(t *testing.T) {
	assert.Equal(t, spread{med: 2, min: 1, max: 9}, spreadOf([]float64{9, 1, 2}))
	assert.Equal(t, spread{med: 2.5, min: 1, max: 9}, spreadOf([]float64{9, 3, 1, 2}))
	assert.Equal(t, spread{}, spreadOf(nil))
}

// timedRun builds one timed run: conns connections in one second, p99 in µs.
func timedRun(conns int64, p99us int, agent *agentRun, foreign int) run {
	return run{load: loadResult{Connections: conns, Elapsed: time.Second, P50: 10 * time.Microsecond, P99: time.Duration(p99us) * time.Microsecond}, agent: agent, foreign: foreign}
}

// Ratios are podnet over baseline within each pair; a pair with another podnet attached is
// left out of the medians; the verdicts say by how much a target is missed.
func TestSummarizeAndVerdicts(t *testing.T) {
	agent := &agentRun{cpu: 100 * time.Millisecond, hwm: 2048, counters: agentstats.Counters{EventsReceived: 4000, EventsLost: 2, RecursionMisses: 1}}
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
	assert.InDelta(t, (4000.0/980+4000.0/960)/2, s.eventsPerConn.med, 1e-9)
	assert.Equal(t, int64(4), s.lost)
	assert.Equal(t, []string{
		"rate ratio 0.970 (target ≥ 0.99): MISSED by 2.0%",
		"p99 ratio 1.060 (target ≤ 1.05): MISSED by 1.0%",
		"zero reserve failures: MISSED: 4 events lost",
	}, s.verdicts())

	// Every pair contaminated: nothing is left out (the report flags them instead).
	for i := range pairs {
		pairs[i].base.foreign = 1
	}
	assert.Equal(t, 3, summarize(sc, goWorkload{}, pairs).contaminated)
	assert.InDelta(t, 0.96, summarize(sc, goWorkload{}, pairs).rate.med, 1e-9)
}
