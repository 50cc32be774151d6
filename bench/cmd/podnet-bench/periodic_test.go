package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMsPerInterval(t *testing.T) {
	// 10 ms over a 10 s window is 1 ms per 1 s interval, 5 ms per 5 s interval.
	ag := &agentRun{cpu: 10 * time.Millisecond, window: 10 * time.Second}
	assert.InDelta(t, 1.0, msPerInterval(ag, time.Second), 1e-9)
	assert.InDelta(t, 5.0, msPerInterval(ag, 5*time.Second), 1e-9)
	assert.Zero(t, msPerInterval(&agentRun{cpu: time.Second}, time.Second), "no window")
}

func TestPer10k(t *testing.T) {
	// 3.5 ms with 20k more sockets than the 3 ms floor: 0.25 ms per 10k.
	assert.InDelta(t, 0.25, per10k(3.5, 3, 20005, 5), 1e-9)
	assert.InDelta(t, -0.05, per10k(2.9, 3, 20005, 5), 1e-9, "noise may go below the floor: reported, not hidden")
	assert.Zero(t, per10k(3.5, 3, 5, 5), "no sockets held")
}

func TestMetricsInterval(t *testing.T) {
	iv, err := metricsInterval(scenario{config: `{"metrics_interval":"1s","metrics_aggregation":"events"}`})
	assert.NoError(t, err)
	assert.Equal(t, time.Second, iv)
	_, err = metricsInterval(scenario{name: "x", config: `{}`})
	assert.ErrorContains(t, err, "needs metrics_interval")
}
