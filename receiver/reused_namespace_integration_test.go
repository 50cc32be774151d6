package podnetreceiver

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/netnstest"
)

// A pod that gets the network namespace inode of a pod gone before it, seen through sockets in
// no pod's cgroup (an nsenter probe, a node agent's check), has series of its own. Found by an independent check: the new pod's series
// continued the old one's counts and start time under the new pod's names, and the old pod's
// series were never emitted again. podnet knows a namespace only by its inode, so handing one
// namespace from pod A's process to pod B's is what a reused inode looks like to it.
func TestAPodAtAReusedNamespaceHasItsOwnSeries(t *testing.T) {
	inBothAggregations(t, 140, testReusedNamespace)
}

func testReusedNamespace(t *testing.T, aggregation string, subnet byte) {
	cgroups := netnstest.NewKubeletCgroups(t)
	netw := netnstest.NewNetwork(t, subnet)
	pod, server := netw.AddPod(), netw.AddPod()
	server.AnswerAll(t, netip.AddrPortFrom(server.IPv4, 8080))
	probe := *pod // the pod's namespace, the test's cgroup: no pod's
	probe.Cgroup = ""
	p := startPeriodic(t, aggregation, true)
	ns := pod.NetnsInode()
	to := netip.AddrPortFrom(server.IPv4, 8080).String()
	series := clientAttrs(server.IPv4, 8080, "ipv4")
	dials := 0

	// holds runs a process of pod uid in the namespace, then has the probe dial until a connect
	// is named after uid (the rescan a miss asks for learns who has the namespace); it returns
	// the pod's holder's stop and how many dials that took.
	holds := func(uid string) (stop func(), n int) {
		holder := *pod
		holder.Cgroup = cgroups.Container(uid, netnstest.NewContainerID())
		stop = holder.StartHolder(t, "0.0.0.0:9000")
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, res := probe.Dial(t, to, "hi")
			require.Empty(t, res)
			dials++
			n++
			var connects []rec
			require.Eventually(t, func() bool {
				connects = connectsTo(p, ns, 8080)
				return len(connects) == dials
			}, 5*time.Second, 10*time.Millisecond, "every dial's connect record")
			if connects[len(connects)-1].res["k8s.pod.uid"] == uid {
				break
			}
			require.True(t, time.Now().Before(deadline), "the probe's connections never named pod %s", uid)
		}
		return stop, n
	}

	uidA, uidB := netnstest.NewUID(), netnstest.NewUID()
	stopA, byA := holds(uidA)
	p.requireReached(t, []expectation{{ns, "podnet.tcp.connections", series, float64(dials)}}, "pod A's connections")
	bBegins := pcommon.NewTimestampFromTime(time.Now())
	stopA()
	netnstest.RemoveCgroupTree(t, filepath.Join(cgroups.Container(uidA, "x"), "..")) // pod A's, as the kubelet does
	_, byB := holds(uidB)
	p.requireReached(t, []expectation{{ns, "podnet.tcp.connections", series, float64(dials)}}, "every connection")
	p.stop()

	last := p.metrics.AllMetrics()
	perPod := map[any]podTotals{}
	for _, rm := range last[len(last)-1].ResourceMetrics().All() {
		if _, ok := inNetns(rm.Resource(), []uint32{ns}); !ok {
			continue
		}
		uid := rm.Resource().Attributes().AsRaw()["k8s.pod.uid"]
		for _, dp := range connectionPoints(rm, series) {
			tot := perPod[uid]
			tot.connections += dp.IntValue()
			tot.start = dp.StartTimestamp()
			perPod[uid] = tot
		}
	}
	t.Logf("%s: %d dials until pod A was named, %d until pod B was; series %v", aggregation, byA, byB, perPod)
	a, b := perPod[uidA], perPod[uidB]
	assert.GreaterOrEqual(t, a.connections, int64(byA), "pod A keeps its series and its count")
	assert.Positive(t, b.connections, "pod B's series")
	assert.LessOrEqual(t, b.connections, int64(byB), "pod B's series counts no connection of pod A")
	assert.Equal(t, int64(dials), a.connections+b.connections, "every connection in one of them")
	assert.GreaterOrEqual(t, b.start, bBegins-pcommon.Timestamp(2*periodicInterval), "pod B's series start when it came, not with pod A's")
	assert.NotContains(t, perPod, nil, "no unnamed series")
}

// connectsTo are the namespace's connect records to port, in order.
func connectsTo(p *periodic, ns uint32, port int64) []rec {
	var out []rec
	for _, r := range records(p.logs.AllLogs(), ns) {
		if r.name == "podnet.tcp.connect" && r.attrs["network.peer.port"] == port {
			out = append(out, r)
		}
	}
	return out
}

// connectionPoints are rm's podnet.tcp.connections points with exactly attrs.
func connectionPoints(rm pmetric.ResourceMetrics, attrs map[string]any) []pmetric.NumberDataPoint {
	single := pmetric.NewMetrics()
	rm.CopyTo(single.ResourceMetrics().AppendEmpty())
	var out []pmetric.NumberDataPoint
	for _, dp := range dataPoints(single, "podnet.tcp.connections") {
		if attrsMatch(dp.Attributes().AsRaw(), attrs) {
			out = append(out, dp)
		}
	}
	return out
}
