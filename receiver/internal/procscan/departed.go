package procscan

import "github.com/podnet/podnet/internal/fifomap"

// maxDeparted bounds the pod cgroups remembered after their last process left (the scan no
// longer sees them): a node runs a few hundred pods' containers at most, and 4,096 departures
// later no socket of the first is left. Each entry is an id and two strings.
const maxDeparted = 4096

// departed are pod cgroups whose processes are gone. Their sockets' last events (closes read
// after the fact, TIME_WAIT, aggregates drained after a short-lived pod exited) still name their
// pod: by the cgroup, which the kernel never reuses, not by the network namespace, whose inode a
// new pod may already have.
type departed struct{ *fifomap.Map[uint64, Ref] }

func newDeparted() departed { return departed{fifomap.New[uint64, Ref](maxDeparted)} }

// keep remembers the pod cgroups of prev (and those resolved since it) that next no longer has.
func (d departed) keep(prev, next *snapshot, resolved map[uint64]Ref) {
	if prev == nil {
		return
	}
	for _, m := range [2]map[uint64]Ref{prev.cgroups, resolved} {
		for id, ref := range m {
			if _, still := next.cgroups[id]; !still && ref.PodUID != "" {
				d.Add(id, ref)
			}
		}
	}
}
