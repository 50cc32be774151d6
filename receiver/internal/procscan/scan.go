package procscan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// walker performs scans. It is used by one goroutine at a time (Start, then the refresh
// loop), which lets it reuse its read buffer.
type walker struct {
	procRoot string
	// cgroups is nil when the host has no cgroup2 mount.
	cgroups *cgroupFS
	// births is told every directory the walk visits, to watch where pod cgroups are made.
	births *births
	buf    []byte
}

// scanResult is one scan's snapshot and what it had to skip.
type scanResult struct {
	snap *snapshot
	// denied counts processes whose namespace link was unreadable for lack of privilege.
	denied      int
	firstDenied error
}

// scan reads every process under the proc root for the network namespaces, and walks the
// cgroup2 hierarchy for the cgroup ids. A process that exits mid-scan is skipped
// silently: that is the normal state of /proc, not an error. The scan fails as a whole only
// when the proc root or the host's namespace is unreadable.
// prev, the last snapshot or nil, sizes the new maps.
func (w *walker) scan(ctx context.Context, prev *snapshot) (scanResult, error) {
	hostNS, err := HostNetns(w.procRoot)
	if err != nil {
		return scanResult{}, fmt.Errorf("reading the host network namespace: %w", err)
	}
	names, err := readDirNames(w.procRoot)
	if err != nil {
		return scanResult{}, err
	}
	res := scanResult{snap: newSnapshot(w.cgroups != nil, prev)}
	for _, name := range names {
		if !isPID(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return scanResult{}, err
		}
		dir := filepath.Join(w.procRoot, name)
		ns, err := readNetns(filepath.Join(dir, "ns", "net"))
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				res.denied++
				if res.firstDenied == nil {
					res.firstDenied = err
				}
			}
			continue
		}
		data, err := w.readFile(filepath.Join(dir, "cgroup"))
		if err != nil {
			continue
		}
		ref, inPod := parseProcCgroup(data).pod()
		res.snap.addProcess(ns, ref, inPod)
	}
	if w.cgroups != nil {
		err := w.cgroups.walk(func(id uint64, path string) {
			ref, _ := ParseCgroupPath(path)
			res.snap.cgroups[id] = ref
			w.births.consider(path, ref)
		})
		if err != nil {
			return scanResult{}, err
		}
	}
	e := res.snap.netns[hostNS]
	e.host = true
	res.snap.netns[hostNS] = e
	return res, nil
}

// readFile reads a small /proc file into the walker's reusable buffer; the result is valid
// until the next call.
func (w *walker) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if w.buf == nil {
		w.buf = make([]byte, 4096)
	}
	n := 0
	for {
		m, err := f.Read(w.buf[n:])
		n += m
		if errors.Is(err, io.EOF) || (err == nil && m == 0) {
			return w.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
		if n == len(w.buf) {
			w.buf = append(w.buf, make([]byte, len(w.buf))...)
		}
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func isPID(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}
