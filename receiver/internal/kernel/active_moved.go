//go:build linux

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// activeMoved alternates the two active_moved sets (bpf/maps.h) between the closes and the
// drains: the -1s of closes that found their key's interval map full, for the keys' running
// open counts (openCounts.moved).
type activeMoved struct {
	slot    *ebpf.Map
	sets    [2]*ebpf.Map
	current int // the set the slot points at: closes write it
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

// newActiveMoved points the closes at the first set; before attaching, or a close would find
// none and leave its -1 in the overflow entry.
func newActiveMoved(coll *ebpf.Collection) (*activeMoved, error) {
	a := &activeMoved{
		slot: coll.Maps[bpf.PodnetMapActiveMoved],
		sets: [2]*ebpf.Map{coll.Maps[bpf.PodnetMapActiveMovedA], coll.Maps[bpf.PodnetMapActiveMovedB]},
	}
	if err := a.slot.Update(uint32(0), a.sets[0], ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("map %s: %w", bpf.PodnetMapActiveMoved, err)
	}
	return a, nil
}

// take points the closes at the other set and hands fn what the one they wrote holds. The slot
// update returns once no program can still hold the old set (map-in-map updates wait for an
// RCU grace period), so no -1 lands in it while it is read and emptied. One left by a failed
// read is taken at the next drain but one, when the slot points at it again: late, not lost.
func (a *activeMoved) take(fn func(*bpf.PodnetAggKey, int64)) error {
	old, next := a.sets[a.current], 1-a.current
	if err := a.slot.Update(uint32(0), a.sets[next], ebpf.UpdateAny); err != nil {
		return fmt.Errorf("switching the moved open counts: %w", err)
	}
	a.current = next
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]bpf.PodnetAggKey, aggregateBatch)
		deltas = make([]int64, aggregateBatch)
	)
	for {
		n, err := old.BatchLookupAndDelete(&cursor, keys, deltas, nil)
		for i := range n {
			fn(&keys[i], deltas[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the moved open counts: %w", err)
		}
	}
}
