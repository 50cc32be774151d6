package netnstest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// KubeletCgroups lays out cgroups the way the kubelet (systemd driver) and containerd do, in
// a throwaway subtree of the node's cgroup2 hierarchy, so "pods" look real to attribution.
type KubeletCgroups struct {
	t    testing.TB
	root string // cgroup2 mount
	base string // this test's subtree, relative to root
}

// NewKubeletCgroups creates the subtree; it is removed at cleanup, after the processes in it.
func NewKubeletCgroups(t testing.TB) *KubeletCgroups {
	t.Helper()
	RequireRoot(t)
	root, err := Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	c := &KubeletCgroups{t: t, root: root, base: "/podnet-test-" + randomHex(4)}
	if err := os.Mkdir(root+c.base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveCgroupTree(t, root+c.base) })
	return c
}

// Container creates the cgroup of one container of a pod and returns its directory.
func (c *KubeletCgroups) Container(podUID, containerID string) string {
	c.t.Helper()
	esc := strings.ReplaceAll(podUID, "-", "_")
	dir := c.root + c.base + "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + esc +
		".slice/cri-containerd-" + containerID + ".scope"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// NewUID returns a random pod UID.
func NewUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NewContainerID returns a random 64-hex container id.
func NewContainerID() string { return randomHex(32) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Cgroup2Mount finds the cgroup2 hierarchy: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified
// on hybrid ones.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount on this machine")
}

// RemoveCgroupTree removes cgroup directories deepest first; a cgroup whose last process was
// just reaped may stay busy for a moment, so each removal is retried briefly.
func RemoveCgroupTree(t testing.TB, dir string) {
	for _, err := range RemoveCgroups(dir) {
		t.Error(err)
	}
}

// RemoveCgroups is RemoveCgroupTree for programs without a testing.TB: it returns what it
// could not remove.
func RemoveCgroups(dir string) []error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errs
}
