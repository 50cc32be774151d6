package podnetreceiver

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
)

func TestSeriesOwnersTellWorkloadsApart(t *testing.T) {
	o := newSeriesOwners(metadata.DefaultResourceAttributesConfig())
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
	assert.Len(t, o.byKey[k].gens, maxOwnerGenerations, "bounded")
	o.prune(map[seriesOwner]struct{}{})
	assert.Empty(t, o.byKey, "no series left")
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

// With podnet.netns.inode and podnet.cgroup.id turned off, local ends that differ only in those
// have one Resource, and so share its series: each series once per export, its connections
// added up, every Resource once (the handshake histogram in it too). An end named as a pod
// has a Resource, and series, of its own. Found by an independent check: two network
// namespaces of one unnamed process's cgroup exported the same series twice, 3 and 2.
func TestConnectionMetricsEndsWithOneResourceShareSeries(t *testing.T) {
	base := NewDefaultConfig()
	want := byPod(func() pmetric.Metrics {
		m := newFixtureMetrics(base)
		m.add(enrichAll(newResources(base, attribution.None{}), fixtureEvents()))
		return m.emit(pcommon.NewTimestampFromTime(time.Now()))
	}())[""].connections
	require.Positive(t, want)

	cfg := NewDefaultConfig()
	cfg.ResourceAttributes.PodnetNetnsInode.Enabled = false
	cfg.ResourceAttributes.PodnetCgroupID.Enabled = false
	m := newFixtureMetrics(cfg)
	other, named := fixtureEvents(), fixtureEvents()
	for i := range other {
		other[i].NetnsIno, other[i].CgroupID = other[i].NetnsIno+100, other[i].CgroupID+100
		named[i].NetnsIno, named[i].CgroupID = named[i].NetnsIno+200, named[i].CgroupID+200
	}
	web0 := attribution.Local{PodUID: "uid-web-0", PodName: "web-0", Namespace: "shop"}
	attr := localsByNetns{names: map[uint32]attribution.Local{named[0].NetnsIno: web0, named[1].NetnsIno: web0}}
	m.add(enrichAll(newResources(cfg, attr), slices.Concat(fixtureEvents(), other, named)))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))

	resources := map[string]bool{}
	series := map[string]bool{}
	connections := map[string]int64{}
	for _, rm := range md.ResourceMetrics().All() {
		res := fmt.Sprint(rm.Resource().Attributes().AsRaw())
		assert.False(t, resources[res], "every Resource once: %s", res)
		resources[res] = true
		pod, _ := rm.Resource().Attributes().Get("k8s.pod.name")
		for _, metric := range rm.ScopeMetrics().At(0).Metrics().All() {
			attrs := func(a pcommon.Map) {
				s := res + metric.Name() + fmt.Sprint(a.AsRaw())
				assert.False(t, series[s], "every series once: %s", s)
				series[s] = true
			}
			switch metric.Type() {
			case pmetric.MetricTypeSum:
				for _, dp := range metric.Sum().DataPoints().All() {
					attrs(dp.Attributes())
					if metric.Name() == "podnet.tcp.connections" {
						connections[pod.Str()] += dp.IntValue()
					}
				}
			case pmetric.MetricTypeHistogram:
				for _, dp := range metric.Histogram().DataPoints().All() {
					attrs(dp.Attributes())
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{"": 2 * want, "web-0": want}, connections,
		"the unnamed ends' connections together, the pod's its own")
	assert.Len(t, resources, 2, "the node's unnamed ends, and the pod")
}

// localsByNetns names the local ends of some network namespaces.
type localsByNetns struct {
	attribution.None
	names map[uint32]attribution.Local
}

func (l localsByNetns) Local(netns uint32, _ uint64) attribution.Local { return l.names[netns] }
