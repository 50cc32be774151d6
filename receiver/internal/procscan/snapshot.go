package procscan

// snapshot is one scan's view of the node. It is immutable once published, so Lookup reads
// it without locks, and each scan replaces it whole, so entries for exited processes go
// away with the next scan and the maps never outgrow the node's current processes.
type snapshot struct {
	// cgroups holds every v2 cgroup some process was in, by id; a zero Ref marks a cgroup
	// known to belong to no pod, so that host processes' sockets are not "unknown".
	cgroups map[uint64]Ref
	// cgroupsResolvable is false without a cgroup2 mount: ids cannot be learned, so misses
	// on them must not trigger rescans.
	cgroupsResolvable bool
	netns             map[uint32]netnsEntry
	// fruitless are unknown keys that asked for a scan which did not find them (misses).
	fruitless map[key]struct{}
}

type netnsEntry struct {
	// podUID is the one pod whose processes live in this namespace, or empty.
	podUID string
	// shared marks a namespace holding processes of more than one pod, which cannot
	// attribute a socket by itself.
	shared bool
	// host marks the node's namespace (kthreadd's): hostNetwork pods live there alongside
	// everything else, so only their cgroup may attribute them.
	host bool
}

// newSnapshot sizes the maps like the previous snapshot (nil on the first scan), since a
// node's process population changes slowly.
func newSnapshot(cgroupsResolvable bool, prev *snapshot) *snapshot {
	var cgroups, netns int
	if prev != nil {
		cgroups, netns = len(prev.cgroups), len(prev.netns)
	}
	return &snapshot{
		cgroups:           make(map[uint64]Ref, cgroups),
		cgroupsResolvable: cgroupsResolvable,
		netns:             make(map[uint32]netnsEntry, netns),
	}
}

// addProcess records that a process of pod ref (when inPod) lives in namespace ns.
func (s *snapshot) addProcess(ns uint32, ref Ref, inPod bool) {
	e := s.netns[ns]
	switch {
	case !inPod || e.shared || e.podUID == ref.PodUID:
	case e.podUID == "":
		e.podUID = ref.PodUID
	default:
		e.podUID, e.shared = "", true
	}
	s.netns[ns] = e
}

// lookup resolves a socket by its cgroup first, then its network namespace (byNetns: the pod
// came from the namespace). unknown is true when a key was never seen, which means a process
// or cgroup newer than this snapshot. Zero keys mean the kernel side could not read them and
// are not unknown.
func (s *snapshot) lookup(ns uint32, cgroupID uint64) (ref Ref, ok, unknown, byNetns bool) {
	if cgroupID != 0 && s.cgroupsResolvable {
		r, known := s.cgroups[cgroupID]
		if r.PodUID != "" {
			return r, true, false, false
		}
		unknown = !known
	}
	if ns == 0 {
		return Ref{}, false, unknown, false
	}
	e, known := s.netns[ns]
	if !known {
		return Ref{}, false, true, false
	}
	if e.host || e.podUID == "" {
		return Ref{}, false, unknown, false
	}
	return Ref{PodUID: e.podUID}, true, unknown, true
}
