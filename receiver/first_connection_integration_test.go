package podnetreceiver

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// newPods is how many pods appear while podnet runs, each making its first connection at
// once: the first event of a pod comes from a cgroup and a namespace the last /proc scan
// never saw.
const newPods = 100

// A pod created while podnet runs has its very first connection attributed to it, with its
// container, however soon after the pod's creation it connects: the periodic scan and the
// rate-limited rescan cannot have seen its cgroup yet.
func TestNewPodFirstConnectionAttributed(t *testing.T) {
	cgroups := netnstest.NewKubeletCgroups(t)
	netw := netnstest.NewNetwork(t, 180)
	server := netw.AddPod()
	server.Cgroup = cgroups.Container(netnstest.NewUID(), netnstest.NewContainerID())
	srv := server.StartServer(t, "0.0.0.0:8080", newPods)

	// A long refresh: only the miss-triggered paths can learn the new pods in time.
	logs, _, stop := startReceiverWith(t, componenttest.NewNopHost(), func(cfg *Config) {
		cfg.Hooks = kernel.HooksAuto
		cfg.AttributionRefresh = time.Hour
	})
	type pod struct {
		p        *netnstest.Pod
		uid, cid string
	}
	pods := make([]pod, newPods)
	for i := range pods {
		p := netw.AddPod()
		pods[i] = pod{p: p, uid: netnstest.NewUID(), cid: netnstest.NewContainerID()}
		p.Cgroup = cgroups.Container(pods[i].uid, pods[i].cid)
		_, res := p.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hi")
		require.Empty(t, res, "pod %d", i)
	}
	srv.Wait(t)
	netns := make([]uint32, len(pods))
	for i, p := range pods {
		netns[i] = p.p.NetnsInode()
	}
	require.Eventually(t, func() bool {
		return len(filterRecs(records(logs.AllLogs(), netns...), "podnet.tcp.connect")) >= newPods
	}, 20*time.Second, 20*time.Millisecond)
	stop()

	missed := 0
	for i, p := range pods {
		c := find(t, records(logs.AllLogs(), netns[i]), "podnet.tcp.connect", map[string]any{"network.peer.port": int64(8080)})
		if c.res["k8s.pod.uid"] != p.uid || c.res["container.id"] != p.cid {
			missed++
		}
	}
	t.Logf("first connections lacking pod or container: %d of %d", missed, newPods)
	assert.Zerof(t, missed, "%d of %d new pods' first connections lack their pod or container", missed, newPods)
}

func filterRecs(rs []rec, name string) []rec {
	var out []rec
	for _, r := range rs {
		if r.name == name {
			out = append(out, r)
		}
	}
	return out
}

// A short-lived pod (a Job's) whose cgroups are gone before its connections are named still
// has its series named: the cgroup was recorded as it was made (procscan's births), and a
// removed cgroup can be named no other way (its network namespace's inode may be another
// pod's). Metrics alone: the in-kernel aggregates are named when drained, at the final
// emission here, well after the job's cgroups went.
func TestShortLivedPodNamedAfterItsCgroupIsGone(t *testing.T) {
	cgroups := netnstest.NewKubeletCgroups(t)
	netw := netnstest.NewNetwork(t, 235)
	server := netw.AddPod()
	server.Cgroup = cgroups.Container(netnstest.NewUID(), netnstest.NewContainerID())
	srv := server.StartServer(t, "0.0.0.0:8080", 1)

	metrics, stop := startMetricsOnlyWith(t, aggregationKernel, func(cfg *Config) {
		cfg.Hooks = kernel.HooksAuto
		cfg.AttributionRefresh = time.Hour
	})
	job := netw.AddPod()
	uid, cid := netnstest.NewUID(), netnstest.NewContainerID()
	job.Cgroup = cgroups.Container(uid, cid)
	_, res := job.Dial(t, netip.AddrPortFrom(server.IPv4, 8080).String(), "hi")
	require.Empty(t, res)
	netnstest.RemoveCgroupTree(t, filepath.Dir(job.Cgroup)) // the pod's, as the kubelet does once it is gone
	srv.Wait(t)
	stop() // the final emission drains and names the aggregates

	netns := job.NetnsInode()
	named := 0
	for _, md := range metrics.AllMetrics() {
		for _, rm := range md.ResourceMetrics().All() {
			if _, ok := inNetns(rm.Resource(), []uint32{netns}); !ok {
				continue
			}
			attrs := rm.Resource().Attributes().AsRaw()
			assert.Equal(t, uid, attrs["k8s.pod.uid"], "the job's pod: %v", attrs)
			assert.Equal(t, cid, attrs["container.id"], "and its container: %v", attrs)
			named++
		}
	}
	assert.NotZero(t, named, "the job's series")
}
