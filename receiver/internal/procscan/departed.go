package procscan

import "sync"

// maxDeparted bounds the pod cgroups remembered after their last process left (the scan no
// longer sees them): a node runs a few hundred pods' containers at most, and 4,096 departures
// later no socket of the first is left. Each entry is an id and two strings.
const maxDeparted = 4096

// departed are pod cgroups whose processes are gone. Their sockets' last events (closes read
// after the fact, TIME_WAIT, aggregates drained after a short-lived pod exited) still name their
// pod: by the cgroup, which the kernel never reuses, not by the network namespace, whose inode a
// new pod may already have.
type departed struct {
	mu    sync.RWMutex
	byID  map[uint64]Ref
	order []uint64 // a ring of maxDeparted ids, oldest at next once full
	next  int
}

// keep remembers the pod cgroups of prev (and those resolved since it) that next no longer has.
func (d *departed) keep(prev, next *snapshot, resolved map[uint64]Ref) {
	if prev == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range [2]map[uint64]Ref{prev.cgroups, resolved} {
		for id, ref := range m {
			if _, still := next.cgroups[id]; !still && ref.PodUID != "" {
				d.addLocked(id, ref)
			}
		}
	}
}

func (d *departed) addLocked(id uint64, ref Ref) {
	if _, ok := d.byID[id]; ok {
		return
	}
	if d.byID == nil {
		d.byID = map[uint64]Ref{}
	}
	if len(d.order) == maxDeparted {
		delete(d.byID, d.order[d.next])
		d.order[d.next] = id
	} else {
		d.order = append(d.order, id)
	}
	d.next = (d.next + 1) % maxDeparted
	d.byID[id] = ref
}

func (d *departed) get(id uint64) (Ref, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ref, ok := d.byID[id]
	return ref, ok
}
