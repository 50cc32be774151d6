//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// activeMoved alternates the two active_moved sets (bpf/maps.h) between the closes and the
// drains: the -1s of closes that found their key's interval map full, for the keys' running
// open counts (openCounts.moved).
type activeMoved struct{ alternating }

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
	a := &activeMoved{alternating{
		what: "moved open counts",
		slot: coll.Maps[bpf.PodnetMapActiveMoved],
		maps: [2]*ebpf.Map{coll.Maps[bpf.PodnetMapActiveMovedA], coll.Maps[bpf.PodnetMapActiveMovedB]},
	}}
	if err := a.point(); err != nil {
		return nil, fmt.Errorf("map %s: %w", bpf.PodnetMapActiveMoved, err)
	}
	return a, nil
}

// take points the closes at the other set and hands fn what the one they wrote holds (see
// alternating.swap). One left by a failed read is taken at the next drain but one, when the
// slot points at it again: late, not lost.
func (a *activeMoved) take(fn func(*bpf.PodnetAggKey, int64)) error {
	old, err := a.swap()
	if err != nil {
		return err
	}
	if err := takeAll(old, func(k *bpf.PodnetAggKey, d *int64) { fn(k, *d) }); err != nil {
		return fmt.Errorf("reading the moved open counts: %w", err)
	}
	return nil
}
