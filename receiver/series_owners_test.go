package podnetreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

func TestSeriesOwnersTellWorkloadsApart(t *testing.T) {
	o := seriesOwners{}
	k := resourceKey{netnsIno: 7, cgroupID: 1}
	at := func(l attribution.Local) uint32 { return o.of(&localEnd{key: k, attr: l}).gen }
	web0 := attribution.Local{PodUID: "uid-web-0"}
	web0Named := attribution.Local{PodUID: "uid-web-0", PodName: "web-0", Namespace: "shop"}
	web1 := attribution.Local{PodUID: "uid-web-1", PodName: "web-1", Namespace: "shop"}

	assert.Equal(t, uint32(0), at(attribution.Local{}), "unnamed first")
	assert.Equal(t, uint32(0), at(web0), "named later: the same workload")
	assert.Equal(t, uint32(0), at(web0Named), "more names of it")
	assert.Equal(t, uint32(0), at(attribution.Local{PodUID: "uid-web-0"}), "fewer (deleted from the API server)")
	assert.Equal(t, uint32(1), at(web1), "another pod at the same identity")
	assert.Equal(t, uint32(1), at(attribution.Local{}), "unnamed: the latest owner")
	assert.Equal(t, uint32(0), at(web0Named), "a late event of the one before")
	assert.Equal(t, uint32(1), at(attribution.Local{Namespace: "shop"}), "a name both had: the latest")
	assert.Equal(t, uint32(2), at(attribution.Local{PodUID: "uid-web-0", PodName: "web-9"}), "a name neither had")

	for i := range maxOwnerGenerations {
		at(attribution.Local{PodUID: string(rune('a' + i))})
	}
	assert.Len(t, o[k].gens, maxOwnerGenerations, "bounded")
	o.prune(map[resourceKey]struct{}{})
	assert.Empty(t, o, "no series left")
}

// A pod at the local-end identity of a pod gone before it (its network namespace's inode
// reused, with a socket in no pod's cgroup) starts its own series: it must not continue the
// other pod's counts and start time under its names. Found by an independent check.
func TestConnectionMetricsAPodAtAReusedIdentityStartsOver(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	web0 := attribution.Local{PodUID: "uid-web-0", PodName: "web-0", Namespace: "shop"}
	web1 := attribution.Local{PodUID: "uid-web-1", PodName: "web-1", Namespace: "shop"}
	m.add(enrichAll(newResources(cfg, localsAs{local: web0}), fixtureEvents()))
	first := pcommon.NewTimestampFromTime(time.Now())
	perPod := byPod(m.emit(first))
	require.NotZero(t, perPod["web-0"].connections)

	time.Sleep(time.Millisecond)
	second := pcommon.NewTimestampFromTime(time.Now())
	m.add(enrichAll(newResources(cfg, localsAs{local: web1}), fixtureEvents()))
	m.add(enrichAll(newResources(cfg, localsAs{}), fixtureEvents())) // unnamed: the latest owner's
	got := byPod(m.emit(pcommon.NewTimestampFromTime(time.Now())))
	assert.Equal(t, perPod["web-0"], got["web-0"], "the pod before keeps its own series")
	assert.Equal(t, 2*perPod["web-0"].connections, got["web-1"].connections, "the new pod's own events only")
	assert.GreaterOrEqual(t, got["web-1"].start, second, "its series start when it came")
	assert.NotContains(t, got, "", "every series named")
}

type podTotals struct {
	connections int64
	start       pcommon.Timestamp // the earliest of its podnet.tcp.connections points
}

// byPod sums podnet.tcp.connections per local pod name ("" for none), over resources.
func byPod(md pmetric.Metrics) map[string]podTotals {
	out := map[string]podTotals{}
	for _, rm := range md.ResourceMetrics().All() {
		if _, ok := rm.Resource().Attributes().Get("podnet.netns.inode"); !ok {
			continue // the node's (overflow)
		}
		name, _ := rm.Resource().Attributes().Get("k8s.pod.name")
		single := pmetric.NewMetrics()
		rm.CopyTo(single.ResourceMetrics().AppendEmpty())
		tot := out[name.Str()]
		for _, dp := range dataPoints(single, "podnet.tcp.connections") {
			tot.connections += dp.IntValue()
			if tot.start == 0 || dp.StartTimestamp() < tot.start {
				tot.start = dp.StartTimestamp()
			}
		}
		out[name.Str()] = tot
	}
	return out
}
