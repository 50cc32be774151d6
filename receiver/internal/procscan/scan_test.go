package procscan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// fakeHost is a /proc and cgroup2 tree made of plain files, so scan logic runs without
// root. Namespace links are symlinks whose targets spell what the kernel's would.
type fakeHost struct {
	t                   testing.TB
	procRoot, cgroupDir string
}

const fakeHostNS = 4026531833

func newFakeHost(t testing.TB) *fakeHost {
	dir := t.TempDir()
	h := &fakeHost{t: t, procRoot: filepath.Join(dir, "proc"), cgroupDir: filepath.Join(dir, "cgroup")}
	require.NoError(t, os.MkdirAll(h.cgroupDir, 0o755))
	h.addProcess(2, fakeHostNS, "0::/\n")
	require.NoError(t, os.WriteFile(filepath.Join(h.procRoot, "2", "comm"), []byte("kthreadd\n"), 0o644))
	require.NoError(t, os.Symlink("2", filepath.Join(h.procRoot, "self")))
	require.NoError(t, os.MkdirAll(filepath.Join(h.procRoot, "sys"), 0o755))
	return h
}

func (h *fakeHost) addProcess(pid int, netns uint32, cgroupFile string) {
	dir := filepath.Join(h.procRoot, strconv.Itoa(pid))
	require.NoError(h.t, os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
	require.NoError(h.t, os.Symlink(fmt.Sprintf("net:[%d]", netns), filepath.Join(dir, "ns", "net")))
	require.NoError(h.t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroupFile), 0o644))
}

// addCgroup creates a cgroup directory and returns its id (inode).
func (h *fakeHost) addCgroup(path string) uint64 {
	require.NoError(h.t, os.MkdirAll(h.cgroupDir+path, 0o755))
	var st unix.Stat_t
	require.NoError(h.t, unix.Stat(h.cgroupDir+path, &st))
	return st.Ino
}

// scanner builds a Scanner by hand: New insists on a real cgroup2 mount.
func (h *fakeHost) scanner() *Scanner {
	require.NoError(h.t, CheckProcRoot(h.procRoot))
	s := &Scanner{
		walker: walker{procRoot: h.procRoot, cgroups: &cgroupFS{dir: h.cgroupDir}},
		logger: zap.NewNop(),
		rescan: make(chan struct{}, 1),
		gone:   newDeparted(),
	}
	require.NoError(h.t, s.scan(context.Background()))
	return s
}

func TestScanAttribution(t *testing.T) {
	h := newFakeHost(t)
	podA := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice"
	ctrA := podA + "/cri-containerd-" + testCID + ".scope"
	pauseA := podA + "/cri-containerd-" + testCID2 + ".scope"
	idA, _ := h.addCgroup(ctrA), h.addCgroup(pauseA)
	h.addProcess(20, 200, "0::"+ctrA+"\n")
	h.addProcess(21, 200, "0::"+pauseA+"\n")

	hostPod := "/kubepods.slice/kubepods-pod" + testStaticUID + ".slice/cri-containerd-" + testCID + ".scope"
	idHostPod := h.addCgroup(hostPod)
	h.addProcess(30, fakeHostNS, "0::"+hostPod+"\n")

	idSSHD := h.addCgroup("/system.slice/sshd.service")
	h.addProcess(10, fakeHostNS, "0::/system.slice/sshd.service\n")

	// Two pods in one namespace: it attributes neither.
	h.addProcess(40, 300, "0::/kubepods/pod"+testUID+"/"+testCID+"\n")
	h.addProcess(41, 300, "0::/kubepods/pod"+testStaticUID+"/"+testCID+"\n")

	// Hybrid host, cgroupfs driver: the pod shows in v1 only; the v2 cgroup is containerd's.
	idContainerd := h.addCgroup("/system.slice/containerd.service")
	h.addProcess(50, 500, "4:memory:/kubepods/besteffort/pod"+testUID+"/"+testCID2+"\n0::/system.slice/containerd.service\n")

	s := h.scanner()
	tests := []struct {
		name  string
		netns uint32
		cg    uint64
		want  Ref
		ok    bool
	}{
		{"container by cgroup", 200, idA, Ref{testUID, testCID, RuntimeContainerd}, true},
		{"pod by netns", 200, 0, Ref{PodUID: testUID}, true},
		{"hostNetwork pod by cgroup", fakeHostNS, idHostPod, Ref{testStaticUID, testCID, RuntimeContainerd}, true},
		{"host process", fakeHostNS, idSSHD, Ref{}, false},
		{"host netns alone", fakeHostNS, 0, Ref{}, false},
		{"shared netns", 300, 0, Ref{}, false},
		{"runtime cgroup falls back to netns", 500, idContainerd, Ref{PodUID: testUID}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.Lookup(tt.netns, tt.cg)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
			assert.Empty(t, s.rescan, "known keys must not trigger a rescan")
		})
	}

	_, ok := s.Lookup(999, 0)
	assert.False(t, ok)
	assert.Len(t, s.rescan, 1, "an unknown namespace schedules a rescan")
	<-s.rescan
	_, ok = s.Lookup(fakeHostNS, 12345678)
	assert.False(t, ok)
	assert.Len(t, s.rescan, 1, "an unknown cgroup schedules a rescan")

	st := s.Stats()
	assert.Equal(t, uint64(1), st.Scans)
	assert.Equal(t, 4, st.Netns) // host, 200, 300, 500
}

func TestScanSkipsVanishedProcesses(t *testing.T) {
	h := newFakeHost(t)
	// A process that exited between readdir and reading its files leaves a bare directory.
	require.NoError(t, os.MkdirAll(filepath.Join(h.procRoot, "77"), 0o755))
	s := h.scanner()
	st := s.Stats()
	assert.Zero(t, st.ScanErrors)
	assert.Zero(t, st.PermissionDenied)
}

func TestCheckProcRoot(t *testing.T) {
	err := CheckProcRoot(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "/hostfs")
	// A container's own /proc without hostPID: no kthreadd.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "1"), 0o755))
	assert.ErrorContains(t, CheckProcRoot(dir), "hostPID")
}

// The node's own /proc passes: reading other processes' namespace links needs root.
func TestCheckProcRootAcceptsTheNodes(t *testing.T) {
	requireRoot(t)
	assert.NoError(t, CheckProcRoot("/proc"))
}

func TestFindCgroup2Mount(t *testing.T) {
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "mountinfo")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	hybrid := "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n"
	got, err := findCgroup2Mount(write(hybrid))
	require.NoError(t, err)
	assert.Equal(t, "/sys/fs/cgroup/unified", got)

	got, err = findCgroup2Mount(write("30 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"))
	require.NoError(t, err)
	assert.Equal(t, "/sys/fs/my cgroup", got)

	_, err = findCgroup2Mount(write("40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"))
	assert.ErrorIs(t, err, errNoCgroup2)

	// White space the kernel does not escape is the path's (found by an independent review,
	// fuzzing: read as "/sys/fs/cgroup"); and no field of another mount passes for the separator.
	got, err = findCgroup2Mount(write("30 23 0:26 / /sys/fs/cgroup\u00a0v2 rw - cgroup2 cgroup2 rw\n"))
	require.NoError(t, err)
	assert.Equal(t, "/sys/fs/cgroup\u00a0v2", got)
	got, err = findCgroup2Mount(write("29 23 0:25 / /a\v-\vcgroup2 rw - tmpfs tmpfs rw\n" +
		"30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"))
	require.NoError(t, err)
	assert.Equal(t, "/sys/fs/cgroup", got)
}

// A pod's cgroup whose processes have left still names its pod (its sockets' last events come
// later), by the cgroup, never by its network namespace: a new pod may have its inode already.
func TestDepartedCgroupsKeepTheirPod(t *testing.T) {
	h := newFakeHost(t)
	job := "/kubepods/besteffort/pod" + testUID + "/" + testCID
	idJob := h.addCgroup(job)
	h.addProcess(20, 200, "0::"+job+"\n")
	s := h.scanner()
	want := Ref{PodUID: testUID, ContainerID: testCID}
	got, ok := s.Lookup(200, idJob)
	require.True(t, ok)
	require.Equal(t, want.PodUID, got.PodUID)

	// The job exits, the kubelet removes its cgroup; a new pod's process gets the same
	// namespace inode.
	next := "/kubepods/besteffort/pod" + testStaticUID + "/" + testCID2
	h.addCgroup(next) // first: the kernel never reuses a cgroup id, a plain directory's inode may be
	require.NoError(t, os.RemoveAll(filepath.Join(h.procRoot, "20")))
	require.NoError(t, os.RemoveAll(h.cgroupDir+job))
	h.addProcess(21, 200, "0::"+next+"\n")
	require.NoError(t, s.scan(context.Background()))
	got, ok = s.Lookup(200, idJob)
	assert.True(t, ok)
	assert.Equal(t, testUID, got.PodUID, "the departed cgroup's pod, not the namespace's new one")
	assert.Equal(t, testCID, got.ContainerID)
	got, _ = s.Lookup(200, 0)
	assert.Equal(t, testStaticUID, got.PodUID, "the namespace alone names its current pod")
}
