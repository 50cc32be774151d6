package podnetreceiver

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

func TestWorkloadOf(t *testing.T) {
	for pod, want := range map[string]string{
		"web-6d4cf56db6-x7k2p":   "web",            // Deployment: ReplicaSet hash and pod suffix
		"my-api-5c9f7b8d4-qz2lk": "my-api",         // a dash in the owner's name
		"fluent-bit-x7k2p":       "fluent-bit",     // DaemonSet or Job
		"db-0":                   "db-0",           // StatefulSet: each pod is its own identity
		"curl":                   "curl",           // a bare pod
		"my-app-backend":         "my-app-backend", // "backend" is not a generated suffix (vowels)
		"job-abcde":              "job-abcde",      // nor is "abcde" (vowels)
		"web-hello-x7k2p":        "web-hello",      // a 5-character suffix after a word that is no hash
		"-x7k2p":                 "-x7k2p",
		"backup-29412345-x7k2p":  "backup",      // CronJob: the run's scheduled minute, then the pod suffix
		"backup-2941-x7k2p":      "backup-2941", // four digits are no scheduled minute
	} {
		assert.Equal(t, want, workloadOf(pod), pod)
	}
}

// An edge idle past metric_series_idle_expiry is forgotten and starts again from zero with a
// new start time (a cumulative reset), also for series that still hold it.
func TestServiceGraphForgetsIdleEdges(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	m := newConnectionMetrics(cfg, fixtureSettings)
	batch := enrichAll(newResources(cfg, podsEverywhere{}), shortConnections(8)) // two connections
	m.add(batch)
	now := time.Now()
	first := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(now))})
	assert.Equal(t, 2, total(first), "one open each, counted at the client")

	for _, s := range m.series {
		s.active = 1 // open connections: the series outlive their edges' expiry
	}
	later := now.Add(cfg.MetricSeriesIdleExpiry + time.Minute)
	assert.Empty(t, edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(later))}), "idle edges are forgotten")
	require.NotEmpty(t, m.series, "the series with open connections are kept")
	m.add(batch)
	again := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
	assert.Equal(t, first, again, "counted from zero again, not on the forgotten edge")
}

func total(e map[string]edgeCounts) (n int) {
	for _, c := range e {
		n += int(c.opens)
	}
	return n
}

// Connections folded into the overflow series count on the overflow edge when their own series
// would have had an edge, failed ones as failed, and nowhere when it would not: a server end
// whose client is a pod (counted at the client), a connection with no pod at either end (found by
// an independent check: the overflow edge counted every folded connection, both ends, and none
// as failed).
func TestServiceGraphOverflowCountsWhatWouldHaveHadAnEdge(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
	cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled = true
	cfg.MaxMetricSeries = 1
	for _, tc := range []struct {
		name          string
		attr          attribution.Attributor
		opens, failed int
	}{
		{"pods", podsEverywhere{}, 21, 1},
		{"no pods", attribution.None{}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newConnectionMetrics(cfg, fixtureSettings)
			events := shortConnections(80) // 20 connections, 4 events each
			refused := events[0]
			refused.Errno = 111 // ECONNREFUSED
			m.add(enrichAll(newResources(cfg, tc.attr), append(events, refused)))
			got := edges([]pmetric.Metrics{m.emit(pcommon.NewTimestampFromTime(time.Now()))})
			failed := 0
			for _, c := range got {
				failed += int(c.failed)
			}
			assert.Equal(t, tc.opens, total(got), "one open per connection, at the client: %v", got)
			assert.Equal(t, tc.failed, failed)
		})
	}
}

// The bound counts named edges only: an overflow edge made first (a folded series' connections)
// leaves room for max_metric_series named ones, as the overflow series does for series.
func TestServiceGraphBoundLeavesOutTheOverflowEdge(t *testing.T) {
	g := serviceGraph{on: true, max: 2, edges: map[edgeKey]*edge{}}
	now := pcommon.NewTimestampFromTime(time.Now())
	overflow := g.get(overflowEdge, now)
	a, b := edgeKey{"ns/a", "ns/s"}, edgeKey{"ns/b", "ns/s"}
	assert.NotSame(t, overflow, g.get(a, now), "first named edge")
	assert.NotSame(t, overflow, g.get(b, now), "second named edge: within max_metric_series 2")
	assert.Same(t, overflow, g.get(edgeKey{"ns/c", "ns/s"}, now), "third: folded into the overflow edge")
	assert.Len(t, g.edges, 3, "two named edges and the overflow edge")
}
