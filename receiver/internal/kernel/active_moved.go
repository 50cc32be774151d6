//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// activeMoved is the two active_moved sets (bpf/maps.h), in the slots of the two interval maps:
// the -1s of closes that found their key's interval map full, for the keys' running open counts
// (openCounts.moved). The interval's switch (agg_slot) switches them too, and its wait covers
// both: a set is taken with the interval it belongs to.
type activeMoved struct {
	maps [2]*ebpf.Map // in active_moved's slots 0 and 1
}

// prepareActiveMoved sizes the sets: with marked reads, max_tracked_connections, which the keys
// between two drains practically cannot outnumber (each is the key of a tracked connection that
// closed; max_metric_series was too few: an independent check filled it, 150 clients closing at
// once); one entry without (nothing writes them then). Elements are not preallocated, buckets
// are (16 B per entry and set).
func prepareActiveMoved(spec *ebpf.CollectionSpec, on bool, opts Options) {
	size := uint32(1)
	if on {
		size = max(opts.MaxTrackedConnections, 1)
	}
	spec.Maps[bpf.PodnetMapActiveMovedA].MaxEntries = size
	spec.Maps[bpf.PodnetMapActiveMovedB].MaxEntries = size
	spec.Maps[bpf.PodnetMapActiveMoved].InnerMap.MaxEntries = size
}

// newActiveMoved puts the sets in their slots; before attaching, or a close would find none
// and leave its -1 in the overflow entry.
func newActiveMoved(coll *ebpf.Collection) (*activeMoved, error) {
	a := &activeMoved{maps: [2]*ebpf.Map{coll.Maps[bpf.PodnetMapActiveMovedA], coll.Maps[bpf.PodnetMapActiveMovedB]}}
	for i, m := range a.maps {
		if err := coll.Maps[bpf.PodnetMapActiveMoved].Update(uint32(i), m, ebpf.UpdateAny); err != nil {
			return nil, fmt.Errorf("map %s: %w", bpf.PodnetMapActiveMoved, err)
		}
	}
	return a, nil
}

// take hands fn what the set of slot i holds: the interval just switched away from, after its
// wait (intervals.swap), so that nothing writes it. One left by a failed read is taken when
// that slot's interval is taken again: late, not lost.
func (a *activeMoved) take(i int, fn func(*bpf.PodnetAggKey, int64)) error {
	if err := takeAll(a.maps[i], func(k *bpf.PodnetAggKey, d *int64) { fn(k, *d) }); err != nil {
		return fmt.Errorf("reading the moved open counts: %w", err)
	}
	return nil
}
