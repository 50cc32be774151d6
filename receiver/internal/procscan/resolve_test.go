package procscan

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// A cgroup is opened by its id alone: a pod's container, a cgroup in no pod, and one removed
// since (its event names nothing, and is not retried).
func TestResolverOpensCgroupsByID(t *testing.T) {
	requireRoot(t)
	fs, base := testCgroupBase(t)
	uid, escaped := newPodUID(t)
	cid := randomHex(t, 32)
	pod := podCgroup(t, fs, base, escaped, cid)
	gone := base + "/gone"
	require.NoError(t, os.Mkdir(fs.dir+gone, 0o755))
	podID, baseID, goneID := cgroupIDOf(t, fs, pod), cgroupIDOf(t, fs, base), cgroupIDOf(t, fs, gone)
	require.NoError(t, os.Remove(fs.dir+gone))

	r := resolver{fs: &fs, logger: zap.NewNop()}
	ref, ok, _ := r.lookup(podID)
	require.True(t, ok)
	assert.Equal(t, Ref{PodUID: uid, ContainerID: cid, Runtime: RuntimeContainerd}, ref)
	ref, ok, _ = r.lookup(baseID)
	assert.True(t, ok)
	assert.Zero(t, ref, "a cgroup outside kubepods is in no pod")
	ref, ok, _ = r.lookup(goneID)
	assert.True(t, ok, "a removed cgroup is known to name nothing")
	assert.Zero(t, ref)
	assert.Len(t, r.known, 3)
	r.take()
	assert.Empty(t, r.known)
}

// Between two scans at most maxResolved cgroups are opened: beyond, lookups miss without a
// system call, as they did before cgroups could be opened by id.
func TestResolverIsBounded(t *testing.T) {
	r := resolver{fs: &cgroupFS{dir: "/nonexistent"}, logger: zap.NewNop(), known: map[uint64]Ref{}}
	for id := range uint64(maxResolved) {
		r.known[id+1] = Ref{}
	}
	_, ok, _ := r.lookup(maxResolved + 1)
	assert.False(t, ok)
	assert.Len(t, r.known, maxResolved)
	_, ok, _ = r.lookup(1)
	assert.True(t, ok, "what was resolved stays until the next scan")
	_, ok, _ = (&resolver{}).lookup(1)
	assert.False(t, ok, "no cgroup2 hierarchy, nothing to open")
}

// BenchmarkResolveByID is what a cgroup newer than the last scan costs its first event (the
// read loop's only system calls on a miss), and what each of maxResolved costs at most.
func BenchmarkResolveByID(b *testing.B) {
	netnstest.RequireRoot(b)
	fs, err := detectCgroupFS("/proc", "")
	require.NoError(b, err)
	var st unix.Stat_t
	require.NoError(b, unix.Stat(fs.dir, &st))
	r := resolver{fs: &fs, logger: zap.NewNop()}
	b.ReportAllocs()
	for b.Loop() {
		r.take()
		if _, ok, _ := r.lookup(st.Ino); !ok {
			b.Fatal("not resolved")
		}
	}
}
