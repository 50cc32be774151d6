//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// aggregateBatch is how many keys one batch syscall moves.
const aggregateBatch = 256

// intervals are the two maps the in-kernel aggregation alternates between (bpf/maps.h): each
// has its slot in `aggregates`, the programs count into the one `agg_slot` names, and a drain
// reads the other, which no program writes any more.
type intervals struct {
	mu      sync.Mutex // one drain at a time
	slots   *ebpf.Map  // aggregates: maps[i] in slot i
	maps    [2]*ebpf.Map
	index   *ebpf.Variable // agg_slot
	current int            // the map agg_slot names: the programs write it
	// ended is when the last drain pointed the programs at the other map (Unix ns): what it
	// handed over was counted before. Read without mu, by a drain's fn too.
	ended atomic.Int64
	// betweenSwitchAndStamp, when set (tests), runs between the switch and the clock read that
	// stamps it, to widen the moment between them.
	betweenSwitchAndStamp func()
}

// overflowKey is the interval maps' overflow entry (bpf/aggregate.h): all zero, which no real
// key is. A key with Family 0 handed to a drain's fn is it.
var overflowKey bpf.PodnetAggKey

// IsOverflow says whether a drained key is the overflow entry: the counts of keys that found
// the interval map full, which the receiver folds into its overflow series.
func IsOverflow(k *bpf.PodnetAggKey) bool { return k.Family == 0 }

func newIntervals(slots *ebpf.Map, index *ebpf.Variable, spec *ebpf.MapSpec) (*intervals, error) {
	iv := &intervals{slots: slots, index: index}
	for i := range iv.maps {
		m, err := ebpf.NewMap(spec)
		if err == nil {
			err = putOverflow(m)
		}
		if err == nil {
			err = slots.Update(uint32(i), m, ebpf.UpdateAny)
		}
		if err != nil {
			if m != nil {
				_ = m.Close()
			}
			iv.close()
			return nil, fmt.Errorf("map %s: %w", bpf.PodnetMapAggregates, err)
		}
		iv.maps[i] = m
	}
	return iv, nil
}

func (iv *intervals) close() {
	for _, m := range iv.maps {
		if m != nil {
			_ = m.Close()
		}
	}
}

// DrainAggregates hands every in-kernel aggregate counted since the last drain to fn, so the
// kernel only ever holds one interval's keys; the caller keeps the cumulative totals. Nothing
// is lost to a program adding while the drain reads: the programs are first pointed at the other
// interval map, and the drain waits until no program still runs that could have looked up the
// old one (swap). A no-op when not aggregating in the kernel.
//
// In both aggregation modes the drain first reads the live progress of open connections
// (bpf/progress.h) into the interval it then takes: each key's `Active` is the number of its
// connections open at that read, and its bytes and retransmits include what open connections
// did since the previous read. Events mode has only those in the map. With marked reads the
// kernel counts opens minus closes instead (ActiveDelta) and the Tracer keeps their sums, so
// fn also gets, with only `Active`, the keys whose open connections did nothing.
func (t *Tracer) DrainAggregates(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	iv := t.aggregates
	iv.mu.Lock()
	defer iv.mu.Unlock()
	progressErr := t.readProgress()
	if progressErr != nil {
		progressErr = fmt.Errorf("reading open connections: %w", progressErr)
	}
	if t.marks == nil {
		return errors.Join(progressErr, iv.drain(fn))
	}
	open := &t.marks.open
	old, err := iv.swap()
	if err == nil {
		// The set the interval's closes wrote, switched and waited for with it; before the
		// interval's keys, so that they report their sums with these in (openCounts.moved).
		if err := t.marks.moved.take(1-iv.current, open.moved); err != nil {
			progressErr = errors.Join(progressErr, err)
		}
		err = iv.read(old, func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
			open.drained(k, v)
			fn(k, v)
		})
	}
	open.rest(fn)
	return errors.Join(progressErr, err)
}

// drain swaps the interval maps and hands the old one's keys to fn; the caller holds mu.
func (iv *intervals) drain(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	old, err := iv.swap()
	if err != nil {
		return err
	}
	return iv.read(old, fn)
}

// swap points the programs at the other interval map and returns the one they wrote, noting
// when the interval ended: just after the switch, a store to agg_slot (bpf/aggregate.h), so that
// the interval holds nothing counted after its stamp. Then the slot of the old map is updated
// with that same map, for the wait: the update returns only once no program can still hold the
// old map (map-in-map updates wait for an RCU grace period, ~30 ms here), and the caller reads
// it with nothing writing it. The stamp is not taken after the wait (found by an independent
// check: points stamped so lacked the connections made during it), nor before the update (the
// update also was the switch, somewhere inside the syscall: points held connections made up to
// tens of µs after their time with busy CPUs).
func (iv *intervals) swap() (*ebpf.Map, error) {
	old, next := iv.current, 1-iv.current
	if err := iv.index.Set(uint32(next)); err != nil {
		return nil, fmt.Errorf("switching the aggregation interval: %w", err)
	}
	iv.current = next
	if iv.betweenSwitchAndStamp != nil {
		iv.betweenSwitchAndStamp()
	}
	at := time.Now()
	if err := iv.point(old); err != nil {
		// Unread until a later drain points the programs back at it and takes it then.
		return nil, fmt.Errorf("waiting for the programs still counting into the last aggregation interval: %w", err)
	}
	iv.ended.Store(at.UnixNano())
	return iv.maps[old], nil
}

// point updates slot i with the map it holds: its wait (swap, and detach.go).
func (iv *intervals) point(i int) error {
	return iv.slots.Update(uint32(i), iv.maps[i], ebpf.UpdateAny)
}

// IntervalEnded is when the last drain's interval ended: what it handed over was counted
// before. Zero before the first drain, or without in-kernel aggregates.
func (t *Tracer) IntervalEnded() time.Time {
	if t.aggregates == nil {
		return time.Time{}
	}
	if ns := t.aggregates.ended.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// read hands old's keys to fn, deleting them, and gives it back its overflow entry. Keys left
// behind by a failed read stay in old, which the next drain makes current again: they are
// counted late, never lost.
func (iv *intervals) read(old *ebpf.Map, fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	return errors.Join(takeAll(old, fn), putOverflow(old))
}

// putOverflow gives an interval map its overflow entry before the programs count into it (the
// map has one entry more than max_metric_series for it). One left by a failed read keeps its
// counts; without the entry, keys that find the map full are counted but lost.
func putOverflow(m *ebpf.Map) error {
	err := m.Update(&overflowKey, &bpf.PodnetAggValue{}, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("adding the overflow entry: %w", err)
	}
	return nil
}
