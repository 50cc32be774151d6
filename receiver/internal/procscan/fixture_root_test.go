package procscan

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// requireRoot skips tests that create network namespaces and cgroups when not root, saying
// so, and fails them in CI.
func requireRoot(t *testing.T) {
	t.Helper()
	netnstest.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to create network namespaces")
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// newPodUID returns a random RFC 4122-shaped UID and its systemd-escaped spelling.
func newPodUID(t *testing.T) (uid, escaped string) {
	h := randomHex(t, 16)
	uid = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	return uid, strings.ReplaceAll(uid, "-", "_")
}

// testCgroupBase makes a throwaway subtree of the host's cgroup2 hierarchy, removed (after
// the test's processes are gone) at cleanup.
func testCgroupBase(t *testing.T) (cgroupFS, string) {
	t.Helper()
	fs, err := detectCgroupFS("/proc", "")
	require.NoError(t, err)
	base := "/podnet-test-" + randomHex(t, 4)
	require.NoError(t, os.Mkdir(fs.dir+base, 0o755))
	t.Cleanup(func() { netnstest.RemoveCgroupTree(t, fs.dir+base) })
	return fs, base
}

// podCgroup creates the directories the kubelet (systemd driver, besteffort) and containerd
// would, below base, and returns the container cgroup's path from the hierarchy root.
func podCgroup(t *testing.T, fs cgroupFS, base, escapedUID, containerID string) string {
	t.Helper()
	p := base + "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + escapedUID + ".slice/cri-containerd-" + containerID + ".scope"
	require.NoError(t, os.MkdirAll(fs.dir+p, 0o755))
	return p
}

// testNetns creates a network namespace removed at cleanup.
func testNetns(t *testing.T) string {
	t.Helper()
	name := "podnet-test-" + randomHex(t, 4)
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// startSleeper runs sleep, inside netns when it is not empty, moves it into the cgroup at
// cgroupPath, and returns its pid once it runs in its final network namespace. It is killed
// and reaped at cleanup, before the cgroups are removed (cleanups run in reverse order).
func startSleeper(t *testing.T, fs cgroupFS, netns, cgroupPath string) int {
	t.Helper()
	args := []string{"sleep", "30"}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	// ip netns exec setns()es then execs sleep: wait for the exec so the namespace is final.
	require.Eventually(t, func() bool {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		return err == nil && strings.TrimSpace(string(comm)) == "sleep"
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, os.WriteFile(fs.dir+cgroupPath+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0o644))
	return pid
}

func netnsOf(t *testing.T, pid int) uint32 {
	t.Helper()
	ino, err := readNetns("/proc/" + strconv.Itoa(pid) + "/ns/net")
	require.NoError(t, err)
	return ino
}

// cgroupIDOf returns a cgroup's id from its directory inode, and checks it against the id in
// the cgroup's file handle, which is how the kernel exposes cgroup ids to user space
// (systemd, bpftool): both are the kernfs node id bpf_get_current_cgroup_id returns.
func cgroupIDOf(t *testing.T, fs cgroupFS, cgroupPath string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(fs.dir+cgroupPath, &st))
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, fs.dir+cgroupPath, 0)
	require.NoError(t, err)
	b := h.Bytes()
	require.Len(t, b, 8)
	require.Equal(t, st.Ino, uint64(b[0])|uint64(b[1])<<8|uint64(b[2])<<16|uint64(b[3])<<24|
		uint64(b[4])<<32|uint64(b[5])<<40|uint64(b[6])<<48|uint64(b[7])<<56, "inode and file handle disagree on the cgroup id")
	return st.Ino
}
