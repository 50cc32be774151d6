package procscan

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

func TestScannerAttributesRealPods(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)

	// A pod with its own network namespace.
	uid, escaped := newPodUID(t)
	cid := randomHex(t, 32)
	podPath := podCgroup(t, fs, base, escaped, cid)
	netns := testNetns(t)
	pid := startSleeper(t, fs, netns, podPath)

	// A hostNetwork pod: host namespace, own cgroup.
	hostUID, hostEscaped := newPodUID(t)
	hostCID := randomHex(t, 32)
	hostPodPath := podCgroup(t, fs, base, hostEscaped, hostCID)
	hostPid := startSleeper(t, fs, "", hostPodPath)

	s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)

	podNS, podCG := netnsOf(t, pid), cgroupIDOf(t, fs, podPath)
	ref, ok := s.Lookup(podNS, podCG)
	require.True(t, ok)
	assert.Equal(t, Ref{PodUID: uid, ContainerID: cid, Runtime: RuntimeContainerd}, ref)

	// A socket whose cgroup is unread (zero) still finds its pod through the namespace.
	ref, ok = s.Lookup(podNS, 0)
	require.True(t, ok)
	assert.Equal(t, Ref{PodUID: uid}, ref)

	hostNS := netnsOf(t, hostPid)
	require.Equal(t, netnsOf(t, 2), hostNS)
	ref, ok = s.Lookup(hostNS, cgroupIDOf(t, fs, hostPodPath))
	require.True(t, ok)
	assert.Equal(t, Ref{PodUID: hostUID, ContainerID: hostCID, Runtime: RuntimeContainerd}, ref)

	// The host namespace alone never attributes, though a pod's process lives in it.
	_, ok = s.Lookup(hostNS, 0)
	assert.False(t, ok)
	// Neither does a cgroup outside any pod: the test tree's root.
	_, ok = s.Lookup(hostNS, cgroupIDOf(t, fs, base))
	assert.False(t, ok)
	assert.Zero(t, s.Stats().ScanErrors)
}

func TestScannerRescansOnUnknownKeys(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	const minRescan = 100 * time.Millisecond
	s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: minRescan})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)

	uid, escaped := newPodUID(t)
	cid := randomHex(t, 32)
	podPath := podCgroup(t, fs, base, escaped, cid)
	pid := startSleeper(t, fs, testNetns(t), podPath)
	ns, cg := netnsOf(t, pid), cgroupIDOf(t, fs, podPath)

	// The namespace alone waits for a rescan; the cgroup is opened by id at once. In this
	// order: a miss asks for a rescan, which may land at once (the start-up scan is older than
	// minRescan on a busy machine), so the namespace is asked first.
	_, ok := s.Lookup(ns, 0)
	require.False(t, ok, "a namespace created after the first scan must miss until a rescan")
	ref, ok := s.Lookup(ns, cg)
	require.True(t, ok, "a cgroup newer than the last scan is resolved by id")
	assert.Equal(t, Ref{PodUID: uid, ContainerID: cid, Runtime: RuntimeContainerd}, ref)

	// Hammer Lookup until the rescan lands: misses coalesce, and scans stay rate-limited.
	begin := time.Now()
	require.Eventually(t, func() bool {
		for range 1000 {
			if ref, ok = s.Lookup(ns, 0); ok {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)
	found := time.Since(begin)
	assert.Equal(t, Ref{PodUID: uid}, ref, "a namespace names the pod, not the container")

	// Keep missing on a key no scan will find, for a while: it asks for a scan, and once a scan
	// did not find it, for none (it would otherwise ask every minRescan: ~10 scans here). Up to
	// three: one already asked for by the lookups above, the key's own, and one asked while
	// that one waited out minRescan.
	const missFor = time.Second
	before := s.Stats()
	for deadline := time.Now().Add(missFor); time.Now().Before(deadline); {
		s.Lookup(0, ^uint64(0))
	}
	st := s.Stats()
	assert.LessOrEqual(t, st.Rescans-before.Rescans, uint64(3), "a key no scan finds stops asking for scans")
	assert.GreaterOrEqual(t, st.Rescans, uint64(1))
	t.Logf("found after %v; %d scans, last took %v", found, st.Scans, st.LastScanDuration)
}

// A cgroup removed before anything saw it (a short-lived pod's, whose events are read after
// it is gone) is not named by its network namespace: that inode may be another pod's by the
// time of the snapshot (found by an independent check: 3 of 40 short-lived pods named after
// the pod that had their namespace's inode before or after them). Unnamed, not misnamed.
func TestRemovedUnseenCgroupIsNotNamedByItsNamespace(t *testing.T) {
	fs, base, uid, ns, s := scannedPod(t)
	ref, ok := s.Lookup(ns, 0)
	require.True(t, ok)
	require.Equal(t, uid, ref.PodUID, "the snapshot has the namespace's pod")

	// Another pod's cgroup, made and removed since the scan (its sockets' events come later),
	// in a tree no scan has seen, so not recorded when made either (births: a lost race, or
	// no inotify).
	_, otherBase := testCgroupBase(t)
	_, otherEscaped := newPodUID(t)
	other := podCgroup(t, fs, otherBase, otherEscaped, randomHex(t, 32))
	otherID := cgroupIDOf(t, fs, other)
	require.NoError(t, os.Remove(fs.dir+other))
	_, ok = s.Lookup(ns, otherID)
	assert.False(t, ok, "a removed cgroup never seen names no pod, not the namespace's")

	// A live cgroup in no pod in that namespace is still named by the namespace (a host
	// process in a pod's namespace).
	ref, ok = s.Lookup(ns, cgroupIDOf(t, fs, base))
	assert.True(t, ok)
	assert.Equal(t, uid, ref.PodUID)
}

// A pod cgroup made and removed between two scans (a Job's pod, a crash-looping container)
// still names its pod: it was recorded when made (inotify on the kubepods tree), since nothing
// can tell what a removed cgroup was.
func TestCgroupMadeBetweenScansKeepsItsPod(t *testing.T) {
	fs, base, _, ns, s := scannedPod(t)

	// Another pod, made after the scan: its pod directory, then its container's at once.
	uid, otherEscaped := newPodUID(t)
	cid := randomHex(t, 32)
	other := podCgroup(t, fs, base, otherEscaped, cid)
	otherID := cgroupIDOf(t, fs, other)
	require.Eventually(t, func() bool { _, ok := s.births.get(otherID); return ok }, 2*time.Second, 5*time.Millisecond,
		"the container's cgroup recorded as it was made")
	require.NoError(t, os.Remove(fs.dir+other))
	require.NoError(t, os.Remove(fs.dir+path.Dir(other)))

	ref, ok := s.Lookup(ns, otherID)
	require.True(t, ok, "named, though removed before any scan or lookup saw it")
	assert.Equal(t, Ref{PodUID: uid, ContainerID: cid, Runtime: RuntimeContainerd}, ref)
}

// The same for a container whose processes run in crun's "container" cgroup inside its scope
// (crun with the systemd driver), made right after the scope: recorded too.
func TestCrunContainerCgroupMadeBetweenScansKeepsItsPod(t *testing.T) {
	fs, base, _, ns, s := scannedPod(t)
	uid, escaped := newPodUID(t)
	cid := randomHex(t, 32)
	scope := podCgroup(t, fs, base, escaped, cid)
	sub := scope + "/container"
	require.NoError(t, os.Mkdir(fs.dir+sub, 0o755))
	subID := cgroupIDOf(t, fs, sub)
	require.Eventually(t, func() bool { _, ok := s.births.get(subID); return ok }, 2*time.Second, 5*time.Millisecond,
		"crun's container cgroup recorded as it was made")
	for _, dir := range []string{sub, scope, path.Dir(scope)} {
		require.NoError(t, os.Remove(fs.dir+dir))
	}
	ref, ok := s.Lookup(ns, subID)
	require.True(t, ok, "named, though removed before any scan or lookup saw it")
	assert.Equal(t, Ref{PodUID: uid, ContainerID: cid, Runtime: RuntimeContainerd}, ref)
}

// scannedPod makes a pod (its cgroups and a process in its own network namespace) and a
// Scanner that has scanned it and scans no more unless told: what happens after is between
// two scans.
func scannedPod(t *testing.T) (fs cgroupFS, base, uid string, ns uint32, s *Scanner) {
	requireRoot(t)
	fs, base = testCgroupBase(t)
	uid, escaped := newPodUID(t)
	pid := startSleeper(t, fs, testNetns(t), podCgroup(t, fs, base, escaped, randomHex(t, 32)))
	s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)
	return fs, base, uid, netnsOf(t, pid), s
}

// Pods come and go; their watches go with them: cgroupfs sends a removed directory's own watch
// nothing and keeps it, so podnet kept one watch per pod ever made (the node's shared
// fs.inotify.max_user_watches, which kubelet and the runtime need too), found by an independent
// check. Counted in the kernel (the inotify instance's fdinfo).
func TestRemovedPodsLeaveNoWatch(t *testing.T) {
	fs, base, _, _, s := scannedPod(t)
	kernelWatches := func() int {
		info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", s.births.fd))
		require.NoError(t, err)
		return strings.Count(string(info), "inotify wd:")
	}
	before := kernelWatches()
	for range 20 {
		_, escaped := newPodUID(t)
		container := podCgroup(t, fs, base, escaped, randomHex(t, 32))
		id := cgroupIDOf(t, fs, container)
		require.Eventually(t, func() bool { _, ok := s.births.get(id); return ok }, 2*time.Second, 5*time.Millisecond, "recorded")
		require.NoError(t, os.Remove(fs.dir+container))
		require.NoError(t, os.Remove(fs.dir+path.Dir(container)))
	}
	require.Eventually(t, func() bool { return kernelWatches() == before }, 2*time.Second, 10*time.Millisecond,
		"the 20 pods' watches removed with their directories (%d before)", before)
}

// A socket whose cgroup is no pod's (a process that entered a pod's network namespace without
// its cgroup) is named by its namespace's pod — until that pod's cgroup is removed: the
// namespace's inode is then free, and a new pod's namespace may have it before the next scan.
// Found by an independent check: such sockets in a new pod's namespace were named after the
// deleted pod whose inode it reused, until the next refresh. Unnamed, not misnamed.
func TestNamespaceOfARemovedPodNamesNoPod(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	uid, escaped := newPodUID(t)
	container := podCgroup(t, fs, base, escaped, randomHex(t, 32))
	pid := startSleeper(t, fs, testNetns(t), container)
	ns := netnsOf(t, pid)
	s, err := New(Config{RefreshInterval: time.Hour, MinRescanInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)

	nonPod := cgroupIDOf(t, fs, base)
	ref, ok := s.Lookup(ns, nonPod)
	require.True(t, ok)
	require.Equal(t, uid, ref.PodUID, "a process in no pod's cgroup, named by its namespace")

	// The pod goes: its process, then its cgroups, as the kubelet removes them.
	require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	require.Eventually(t, func() bool { return os.Remove(fs.dir+container) == nil }, 5*time.Second, 10*time.Millisecond,
		"the container's cgroup removed once its process is gone")
	require.NoError(t, os.Remove(fs.dir+path.Dir(container)))
	require.Eventually(t, func() bool { return s.births.podGone(uid) }, 2*time.Second, 5*time.Millisecond,
		"the pod's removal seen")

	_, ok = s.Lookup(ns, nonPod)
	assert.False(t, ok, "a removed pod's namespace names no pod: its inode may be another pod's")
}

// A cgroup_root below the hierarchy's root (a subtree, or a container's own cgroup namespace
// mounted in place of the host's) is told once at start; the hierarchy's root is not.
func TestCgroupRootBelowTheHierarchyRootIsTold(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	for _, tc := range []struct {
		root string
		told bool
	}{{fs.dir, false}, {fs.dir + base, true}} {
		core, logged := observer.New(zap.WarnLevel)
		_, err := New(Config{CgroupRoot: tc.root, Logger: zap.New(core)})
		require.NoError(t, err, "a subtree still attributes what is under it")
		told := logged.FilterMessageSnippet("below its hierarchy's root").All()
		assert.Equal(t, tc.told, len(told) == 1, "%s: %v", tc.root, logged.All())
		if tc.told {
			assert.Equal(t, tc.root, told[0].ContextMap()["cgroup_root"])
		}
	}
}
