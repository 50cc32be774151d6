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

	"golang.org/x/sys/unix"
)

// cgroupFS is the host's cgroup2 hierarchy. A directory's inode number is the cgroup id the
// kernel reports (the kernfs node id, which cgroup2 uses as the inode number on 64-bit).
//
// Cgroup ids are learned by walking this tree, not by resolving the paths in
// /proc/<pid>/cgroup: the kernel writes those relative to the reader's cgroup namespace, and
// a collector in a container with a private cgroup namespace (the default under cgroup v2)
// sees other pods as "/../../kubepods-besteffort.slice/…", which names no directory unless
// it knows where its own namespace sits. The walk also learns cgroups no process was seen in.
type cgroupFS struct {
	dir string
}

// detectCgroupFS returns the configured cgroup2 directory, or finds the cgroup2 mount in the
// host's mount table (kthreadd's) under procRoot and translates its mount point to the host root
// procRoot sits in (/hostfs/proc → /hostfs/sys/fs/cgroup).
func detectCgroupFS(procRoot, override string) (cgroupFS, error) {
	dir := override
	if dir == "" {
		mountPoint, err := findCgroup2Mount(filepath.Join(procRoot, hostAnchor, "mountinfo"))
		if err != nil {
			return cgroupFS{}, err
		}
		dir = filepath.Join(filepath.Dir(filepath.Clean(procRoot)), mountPoint)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return cgroupFS{}, fmt.Errorf("cgroup root %q: %w: in a container, mount the host's / at /hostfs or set cgroup_root to where the host's cgroup2 hierarchy is mounted", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		// The fix named (found by an independent check: the hint named the very path that
		// failed, unmounted on a hybrid host).
		return cgroupFS{}, fmt.Errorf("cgroup root %q is not a cgroup2 mount: set cgroup_root to where the host's cgroup2 hierarchy is mounted (on a hybrid host usually /sys/fs/cgroup/unified, under /hostfs in a container), or mount it there (mount -t cgroup2 none %s)", dir, dir)
	}
	return cgroupFS{dir: dir}, nil
}

// belowRoot says whether the directory is a cgroup under its hierarchy's root rather than the
// root: a cgroup_root set to a subtree, or a container's own cgroup namespace mounted in place of
// the host's hierarchy. Only the root cgroup has no cgroup.type.
func (c cgroupFS) belowRoot() bool {
	_, err := os.Stat(filepath.Join(c.dir, "cgroup.type"))
	return err == nil
}

// walk calls visit for every cgroup with its id and its path from the hierarchy's root.
// Cgroups removed during the walk are skipped; only an unreadable root is an error.
func (c cgroupFS) walk(visit func(id uint64, path string)) error {
	var st unix.Stat_t
	if err := unix.Stat(c.dir, &st); err != nil {
		return fmt.Errorf("cgroup root %q: %w", c.dir, err)
	}
	visit(st.Ino, "/")
	return c.walkBelow("", visit)
}

func (c cgroupFS) walkBelow(rel string, visit func(uint64, string)) error {
	entries, err := os.ReadDir(filepath.Join(c.dir, rel))
	if err != nil {
		return err
	}
	var st unix.Stat_t
	for _, e := range entries {
		if !e.IsDir() {
			continue // interface files (cgroup.procs, memory.max, …)
		}
		child := rel + "/" + e.Name()
		if unix.Stat(c.dir+child, &st) != nil {
			continue
		}
		visit(st.Ino, child)
		if err := c.walkBelow(child, visit); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

var errNoCgroup2 = errors.New("no cgroup2 mount")

// findCgroup2Mount returns the mount point of the first cgroup2 mount listed in a mountinfo
// file ("id parent maj:min root mountpoint opts [optional…] - fstype source superopts").
func findCgroup2Mount(mountinfo string) (string, error) {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// Single spaces separate the fields; the kernel escapes only space, tab, newline and
		// backslash inside them, so other white space (\v, \f, \r, U+00A0…) is a path's own
		// (strings.Fields split on it: found by an independent review, fuzzing).
		fields := strings.Split(sc.Text(), " ")
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep >= 5 && sep+1 < len(fields) && fields[sep+1] == "cgroup2" {
			return unescapeMountinfo(fields[4]), nil
		}
	}
	return "", fmt.Errorf("%w in %s", errNoCgroup2, mountinfo)
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
