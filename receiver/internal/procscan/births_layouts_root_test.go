package procscan

import (
	"context"
	"os"
	"path"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CRI-O with the systemd driver (conmon_cgroup = "pod") puts each container's monitor in
// crio-conmon-<id>.scope inside the pod's slice, removed when the container exits (an init
// container finishing, a restart). births took any removed directory below a pod that is not a
// container for the pod's own, marked the running pod gone for good, unnamed its namespace's
// lookups, and each asked for a rescan: a full scan every MinRescanInterval (found by an
// independent check).
func TestRemovedConmonScopeLeavesItsPodAlive(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	uid, escaped := newPodUID(t)
	cid := randomHex(t, 32)
	podSlice := base + "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + escaped + ".slice"
	container := podSlice + "/crio-" + cid + ".scope"
	conmon := podSlice + "/crio-conmon-" + cid + ".scope"
	require.NoError(t, os.MkdirAll(fs.dir+container, 0o755))
	require.NoError(t, os.MkdirAll(fs.dir+conmon, 0o755))
	pid := startSleeper(t, fs, testNetns(t), container)
	ns := netnsOf(t, pid)

	s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)

	nonPod := cgroupIDOf(t, fs, base) // a socket whose cgroup is no pod's, in the pod's namespace
	for _, cg := range []uint64{0, nonPod} {
		ref, ok := s.Lookup(ns, cg)
		require.True(t, ok)
		require.Equal(t, uid, ref.PodUID)
	}

	// The container's monitor exits (init container done, or a restart): only its scope goes.
	require.NoError(t, os.Remove(fs.dir+conmon))
	time.Sleep(300 * time.Millisecond) // let inotify deliver
	t.Logf("podGone(%s) = %v, though its pod slice and container are alive", uid, s.births.podGone(uid))
	for _, cg := range []uint64{0, nonPod} {
		ref, ok := s.Lookup(ns, cg)
		assert.True(t, ok, "cgroup %d: the pod is alive (its slice, its container, its process)", cg)
		assert.Equal(t, uid, ref.PodUID)
	}
	// Not healed by scans: podsGone is never cleared, and each such lookup asks for a rescan
	// that finds the namespace (so the key is never "fruitless"): a full scan every
	// MinRescanInterval for as long as the pod's sockets have events.
	before := s.Stats().Rescans
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.Lookup(ns, nonPod)
	}
	ref, ok := s.Lookup(ns, nonPod)
	t.Logf("after 1 s of lookups: %d rescans; lookup now %+v %v", s.Stats().Rescans-before, ref, ok)
	assert.LessOrEqual(t, s.Stats().Rescans-before, uint64(2), "a known key keeps asking for scans")
	assert.True(t, ok, "still unnamed after rescans")
	_, err = os.Stat(fs.dir + path.Dir(conmon))
	require.NoError(t, err, "the pod slice still exists")
}

// A kubelet with cgroupRoot /kubelet and the systemd driver (kind's nodes) makes its pods under
// kubelet.slice/kubelet-kubepods.slice: the parser knows the layout, but births watched only
// directories named kubepods*, so a pod made and removed between two scans was never recorded
// (its late events unnamed) and its removal never seen (found by an independent check).
func TestBirthsUnderKubeletCgroupRootAreWatched(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	for _, layout := range []struct{ name, qos, podPrefix string }{
		{"default", "/kubepods.slice/kubepods-besteffort.slice", "kubepods-besteffort-pod"},
		{"cgroupRoot /kubelet", "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice", "kubelet-kubepods-besteffort-pod"},
	} {
		t.Run(layout.name, func(t *testing.T) {
			// A live pod so that the scan visits (and would watch) the kubepods tree.
			_, esc0 := newPodUID(t)
			live := base + layout.qos + "/" + layout.podPrefix + esc0 + ".slice/cri-containerd-" + randomHex(t, 32) + ".scope"
			require.NoError(t, os.MkdirAll(fs.dir+live, 0o755))
			pid := startSleeper(t, fs, testNetns(t), live)
			ns := netnsOf(t, pid)
			s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: time.Hour})
			require.NoError(t, err)
			require.NoError(t, s.Start(context.Background()))
			t.Cleanup(s.Stop)

			uid, esc := newPodUID(t)
			cid := randomHex(t, 32)
			pod := base + layout.qos + "/" + layout.podPrefix + esc + ".slice"
			c := pod + "/cri-containerd-" + cid + ".scope"
			require.NoError(t, os.MkdirAll(fs.dir+c, 0o755))
			id := cgroupIDOf(t, fs, c)
			parsed, _ := ParseCgroupPath(c)
			require.Equal(t, uid, parsed.PodUID, "the parser knows this layout")
			recorded := assert.Eventually(t, func() bool { _, ok := s.births.get(id); return ok }, time.Second, 5*time.Millisecond,
				"%s: a new container's cgroup recorded as it was made", layout.name)
			require.NoError(t, os.Remove(fs.dir+c))
			require.NoError(t, os.Remove(fs.dir+pod))
			time.Sleep(100 * time.Millisecond)
			ref, ok := s.Lookup(ns, id)
			t.Logf("%s: recorded at birth %v; lookup after removal: %+v %v; pod gone seen %v", layout.name, recorded, ref, ok, s.births.podGone(uid))
			assert.True(t, ok, "named, though removed before any scan saw it")
			assert.Equal(t, uid, ref.PodUID)
		})
	}
}
