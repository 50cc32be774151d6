package procscan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupFS locates cgroup v2 directories, whose inode numbers are the cgroup ids the kernel
// reports (kernfs node id; cgroup2 uses it as the inode number on 64-bit kernels).
type cgroupFS struct {
	// dir is where the cgroup2 mount is reachable from this process.
	dir string
	// mountRoot is the mount's root as /proc paths name it. The kernel writes both mountinfo
	// roots and /proc/<pid>/cgroup paths relative to the reader's cgroup namespace, so in a
	// container with a private cgroup namespace both start with the same "/../..", and
	// stripping one from the other yields the directory below the mount.
	mountRoot string
}

// detectCgroupFS finds the cgroup2 mount in the mount table of pid 1 under procRoot, and
// translates its mount point to the host root procRoot sits in (/hostfs/proc → /hostfs).
// A configured override replaces the directory but keeps the detected root, because the
// /proc paths are still relative to this process's cgroup namespace.
func detectCgroupFS(procRoot, override string) (cgroupFS, error) {
	mountPoint, root, err := findCgroup2Mount(filepath.Join(procRoot, "1", "mountinfo"))
	if err != nil && override == "" {
		return cgroupFS{}, err
	}
	if err != nil {
		root = "/"
	}
	fs := cgroupFS{dir: override, mountRoot: root}
	if fs.dir == "" {
		fs.dir = filepath.Join(filepath.Dir(filepath.Clean(procRoot)), mountPoint)
	}
	return fs, nil
}

// path returns the directory of a cgroup named by a /proc/<pid>/cgroup v2 path, or false
// when it lies outside the mount (another cgroup namespace's view).
func (c cgroupFS) path(v2Path string) (string, bool) {
	rel := v2Path
	if c.mountRoot != "/" {
		var found bool
		rel, found = strings.CutPrefix(v2Path, c.mountRoot)
		if !found || (rel != "" && rel[0] != '/') {
			return "", false
		}
	}
	p := filepath.Join(c.dir, rel)
	if p != c.dir && !strings.HasPrefix(p, c.dir+"/") {
		return "", false
	}
	return p, true
}

var errNoCgroup2 = errors.New("no cgroup2 mount")

// findCgroup2Mount returns the mount point and root of the first cgroup2 mount listed in a
// mountinfo file ("id parent maj:min root mountpoint opts [optional…] - fstype source …").
func findCgroup2Mount(mountinfo string) (mountPoint, root string, err error) {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return "", "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		return unescapeMountinfo(fields[4]), unescapeMountinfo(fields[3]), nil
	}
	return "", "", fmt.Errorf("%w in %s (cgroup v1-only host? attribution falls back to network namespaces)", errNoCgroup2, mountinfo)
}

// unescapeMountinfo undoes the kernel's octal escaping of space, tab, newline and backslash
// in mountinfo paths ("\040").
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
