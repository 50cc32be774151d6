//go:build linux

package procfound

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// listProcesses returns the pids under procRoot in ascending order. Only thread-group
// leaders are listed there (threads hide under /proc/<pid>/task), and threads share their
// leader's descriptors, so reading leaders alone misses no socket.
func listProcesses(procRoot string) ([]uint32, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]uint32, 0, len(names))
	for _, name := range names {
		if pid, err := strconv.ParseUint(name, 10, 32); err == nil {
			pids = append(pids, uint32(pid))
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// namespaces groups processes by the network namespace they live in: the order namespaces
// were first met in, and for each the processes (ascending) whose /proc/<pid>/net shows its
// tables, so that one that exits before its tables are read can be replaced by the next.
type namespaces struct {
	order   []uint32
	members map[uint32][]string
}

// groupByNamespace stats each process's namespace link; its inode is the namespace's.
// Processes that exited or whose link is unreadable are left out of live: the kernel guards
// the descriptor links with the same ptrace check as the namespace links.
func groupByNamespace(procRoot string, pids []uint32, st *Stats) (ns namespaces, live []uint32) {
	ns.members = map[uint32][]string{}
	live = make([]uint32, 0, len(pids))
	for _, pid := range pids {
		p := strconv.FormatUint(uint64(pid), 10)
		var s unix.Stat_t
		err := unix.Stat(procRoot+"/"+p+"/ns/net", &s)
		switch {
		case gone(err):
			st.Vanished++
			continue
		case err != nil:
			st.Unreadable++
			continue
		}
		live = append(live, pid)
		ino := uint32(s.Ino) // namespace inodes come from a 32-bit allocator (proc_inum)
		if _, seen := ns.members[ino]; !seen {
			ns.order = append(ns.order, ino)
		}
		ns.members[ino] = append(ns.members[ino], p)
	}
	return ns, live
}

// gone reports whether err says the process exited: its /proc directory is gone (ENOENT),
// or it is a zombie whose namespaces and descriptors were already released (ENOENT too, or
// ESRCH from some links).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}
