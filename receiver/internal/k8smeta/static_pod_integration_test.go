package k8smeta

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
)

// A static pod's cgroups carry the kubelet's UID of it (its manifest's hash), not the
// metadata.uid the API gave its mirror pod: the Store finds the mirror pod by either, and
// names it with the API's UID. Found by an independent check: a static pod's local end had
// k8s.pod.uid=<hash> and no name, while its peers named it by the API's UID.
func TestStaticPodByKubeletUID(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	// As the kubelet writes it: the mirror annotation holds the hash, config.hash too. The
	// ServiceAccount admission lets mirror pods through without one, as kube-system has none
	// here (no controller-manager).
	mirror := func(name, hash, containerID string) *kubetest.Pod {
		return &kubetest.Pod{
			Namespace: "kube-system", Name: name, Node: "node-a", IPs: []string{"192.0.2.1"}, HostNetwork: true,
			Containers:  map[string]string{"web": "containerd://" + containerID},
			Annotations: map[string]string{"kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"},
		}
	}
	const hash, lateHash = "6bf2e4b1c0a94d8e9f3a2b1c0d9e8f7a", "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
	static := c.CreatePod(t, *mirror("static-web-node-a", hash, "aaa111"))
	require.NotEqual(t, hash, string(static.UID), "the API gives the mirror pod a UID of its own")

	s, _, synced := startStore(t, kubeconfig, "node-a", 30*time.Second)
	require.True(t, synced)

	want := Pod{
		Name: "static-web-node-a", Namespace: "kube-system", UID: string(static.UID), Workload: "static-web-node-a", HostNetwork: true,
		Containers: map[string]string{"aaa111": "web"},
	}
	p, ok := s.PodByUID(hash)
	require.True(t, ok, "by the UID its cgroups carry")
	assert.Equal(t, want, p, "named, with the API's UID")
	p, ok = s.PodByUID(string(static.UID))
	require.True(t, ok, "by its metadata.uid too")
	assert.Equal(t, want, p)
	name, ok := s.ContainerName(hash, "aaa111")
	assert.True(t, ok)
	assert.Equal(t, "web", name)

	t.Run("by watch", func(t *testing.T) {
		late := c.CreatePod(t, *mirror("static-late-node-a", lateHash, "bbb222"))
		require.Eventually(t, func() bool { p, ok := s.PodByUID(lateHash); return ok && p.UID == string(late.UID) }, settle, tick)
	})

	t.Run("mirror pod deleted and made again", func(t *testing.T) {
		c.DeletePod(t, "kube-system", "static-web-node-a")
		require.Eventually(t, func() bool { p, ok := s.PodByUID(hash); return ok && p.Gone }, settle, tick,
			"a deleted mirror pod is still named by the kubelet's UID, for its sockets' last events")
		p, _ := s.PodByUID(hash)
		assert.Equal(t, "static-web-node-a", p.Name)
		assert.Equal(t, string(static.UID), p.UID)

		// The kubelet makes a deleted mirror pod again while its static pod runs: same hash, a
		// new metadata.uid, which is the one named from then on.
		again := c.CreatePod(t, *mirror("static-web-node-a", hash, "aaa111"))
		require.Eventually(t, func() bool { p, ok := s.PodByUID(hash); return ok && !p.Gone }, settle, tick)
		p, _ = s.PodByUID(hash)
		assert.Equal(t, string(again.UID), p.UID)
	})
}

// A static pod's mirror pod deleted by hand (the kubelet makes it again: same kubelet UID, new
// metadata.uid), then the static pod removed for good: its sockets' last events, named by the
// kubelet's UID its cgroups carry, name the mirror pod it had when it went, with its containers
// (found by an independent review: the first mirror's UID, and no container name).
func TestGoneStaticPodIsNamedByItsLastMirror(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	const hash = "5bf2e4b1c0a94d8e9f3a2b1c0d9e8f7b"
	mirror := func(cid string) kubetest.Pod {
		return kubetest.Pod{
			Namespace: "kube-system", Name: "static-web-node-a", Node: "node-a", IPs: []string{"192.0.2.1"}, HostNetwork: true,
			Containers:  map[string]string{"web": "containerd://" + cid},
			Annotations: map[string]string{"kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"},
		}
	}
	c.CreatePod(t, mirror("aaa111"))
	s, _, synced := startStore(t, kubeconfig, "node-a", 30*time.Second)
	require.True(t, synced)

	c.DeletePod(t, "kube-system", "static-web-node-a")
	require.Eventually(t, func() bool { p, ok := s.PodByUID(hash); return ok && p.Gone }, settle, tick)
	again := c.CreatePod(t, mirror("ccc333")) // made again; its container restarted since
	require.Eventually(t, func() bool { p, ok := s.PodByUID(hash); return ok && p.UID == string(again.UID) }, settle, tick)

	c.DeletePod(t, "kube-system", "static-web-node-a") // removed for good
	require.Eventually(t, func() bool { p, ok := s.PodByUID(string(again.UID)); return ok && p.Gone }, settle, tick)
	p, ok := s.PodByUID(hash)
	require.True(t, ok)
	assert.Equal(t, string(again.UID), p.UID, "the mirror pod it had when it went")
	name, _ := s.ContainerName(hash, "ccc333")
	assert.Equal(t, "web", name, "its last container is named")
}
