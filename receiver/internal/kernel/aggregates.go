package kernel

import (
	"errors"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// aggregateBatch is how many keys one batch syscall moves.
const aggregateBatch = 256

// DrainAggregates hands every in-kernel aggregate to fn and deletes it, so the map only ever
// holds one interval's keys; the caller keeps the cumulative totals. Each batch is read and
// deleted under the kernel's bucket locks: no increment is counted twice.
func (t *Tracer) DrainAggregates(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	keys := make([]bpf.PodnetAggKey, aggregateBatch)
	values := make([]bpf.PodnetAggValue, aggregateBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.aggregates.BatchLookupAndDelete(&cursor, keys, values, nil)
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
