//go:build linux

package procfound

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// Scan finds the open TCP connections under procRoot (the host's /proc: run with hostPID),
// in every network namespace at least one process lives in. Pods always have one (their
// sandbox's pause process); a namespace kept only by a bind mount or by sockets held from
// outside it is not seen.
//
// It returns at most limit connections, sorted by namespace, local and peer address, so that
// a truncated scan keeps the same ones each time; the rest are counted in Stats.Truncated.
// err is set only when procRoot cannot be listed or limit is not positive.
func Scan(procRoot string, limit int) ([]Conn, Stats, error) {
	var st Stats
	if limit <= 0 {
		return nil, st, fmt.Errorf("procfound: limit must be positive, got %d", limit)
	}
	pids, err := listProcesses(procRoot)
	if err != nil {
		return nil, st, fmt.Errorf("procfound: listing processes: %w", err)
	}
	st.Processes = len(pids)
	ns, live := groupByNamespace(procRoot, pids, &st)
	conns, byInode := readNamespaces(procRoot, ns, &st)
	claimOwners(procRoot, live, conns, byInode, &st)
	owned := slices.DeleteFunc(conns, func(c Conn) bool { return c.PID == 0 })
	st.Unowned += len(conns) - len(owned)
	slices.SortFunc(owned, compareConns)
	if len(owned) > limit {
		st.Truncated = len(owned) - limit
		owned = slices.Clip(owned[:limit])
	}
	return owned, st, nil
}

// readNamespaces reads each namespace's tables once, through the first of its processes
// still there, and returns its open connections, roles guessed, owners not yet known.
// byInode indexes them by socket inode.
func readNamespaces(procRoot string, ns namespaces, st *Stats) (conns []Conn, byInode map[uint64]int) {
	byInode = map[uint64]int{}
	var buf bytes.Buffer
	for _, ino := range ns.order {
		t, ok := readNamespace(procRoot, ns.members[ino], &buf)
		if !ok {
			continue // every process in it exited: its sockets, if any, are going too
		}
		st.Namespaces++
		st.Malformed += t.malformed
		for _, s := range t.open {
			if s.inode == 0 {
				st.Unowned++ // an orphan: closed by its process, finishing in the kernel
				continue
			}
			byInode[s.inode] = len(conns)
			conns = append(conns, Conn{
				NetnsIno: ino, Local: s.local, Peer: s.peer,
				Role: roleOf(s.local, s.peer, t.listeners), RoleGuessed: true,
				Inode: s.inode, State: s.state,
			})
		}
	}
	return conns, byInode
}

// readNamespace reads the tables through the first member that is still there. Members that
// fail are not counted here: the descriptor walk meets them and counts them once.
func readNamespace(procRoot string, members []string, buf *bytes.Buffer) (namespaceTable, bool) {
	for _, pid := range members {
		if t, err := readTables(procRoot, pid, buf); err == nil {
			return t, true
		}
	}
	return namespaceTable{}, false
}

func compareConns(a, b Conn) int {
	return cmp.Or(
		cmp.Compare(a.NetnsIno, b.NetnsIno),
		a.Local.Compare(b.Local),
		a.Peer.Compare(b.Peer),
		cmp.Compare(a.Inode, b.Inode),
	)
}
