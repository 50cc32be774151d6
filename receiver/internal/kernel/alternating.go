//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// alternating is a pair of maps the programs write in turn, through a one-slot map-in-map that
// user space points at one of them (bpf/maps.h: the moved open counts, the marked sets; the
// aggregation intervals flip a variable instead, aggregates.go), so that user space reads the other while nothing writes it.
type alternating struct {
	what    string // for errors
	slot    *ebpf.Map
	maps    [2]*ebpf.Map
	current int // the map the slot points at: the programs write it
}

// point points the slot at the current map: at start, before the programs attach (or they
// would find none), and again at detach, for its wait (detach.go).
func (a *alternating) point() error {
	return a.slot.Update(uint32(0), a.maps[a.current], ebpf.UpdateAny)
}

// swap points the programs at the other map and returns the one they wrote. The slot update
// returns once no program can still hold the old one (map-in-map updates wait for an RCU grace
// period), so the caller reads it with nothing writing it.
func (a *alternating) swap() (*ebpf.Map, error) {
	old, next := a.maps[a.current], 1-a.current
	if err := a.slot.Update(uint32(0), a.maps[next], ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("switching the %s: %w", a.what, err)
	}
	a.current = next
	return old, nil
}

// takeAll hands fn every entry of m and deletes it, aggregateBatch entries per syscall. Entries
// left by a failed read stay in m.
func takeAll[K, V any](m *ebpf.Map, fn func(*K, *V)) error {
	keys, values := make([]K, aggregateBatch), make([]V, aggregateBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookupAndDelete(&cursor, keys, values, nil)
		for i := range n {
			fn(&keys[i], &values[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
