//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// errNoListenerScan: the tracer was opened with Options.NoListenerScan.
var errNoListenerScan = errors.New("the listener scan was not asked for at load (Options.NoListenerScan): listeners are not kept")

const listenDropsSize = int(unsafe.Sizeof(bpf.PodnetListenDrops{}))

// ListenDrops runs the listener scan (bpf/progress.h): fn gets every listening TCP socket that
// some process holds, once each, with its socket drop count since it was created: the SYNs and
// completed handshakes it dropped (its accept queue full, or no memory for a request: the
// kernel's ListenDrops, per listener), and packets its pending requests refused, which the caller
// tells apart through the namespace's ListenDrops (Tgid, a process in that namespace). No hook
// sees these drops without kprobes: the kernel frees the dropped SYN as consumed, with no drop
// reason. A walk of every process's descriptors: run it per metrics interval, not per event.
//
// Once every listener is in `listeners` (the state hook adds those that begin listening, the
// start-up scan, FindExisting, those that did before), the scan walks that map instead: its cost follows the
// node's listeners, not its open connections. A listener that found the map full makes every
// later scan walk the descriptors.
func (t *Tracer) ListenDrops(fn func(*bpf.PodnetListenDrops)) error {
	if t.iters == nil {
		return t.iterErr
	}
	if t.noListenerScan {
		return errNoListenerScan
	}
	full, err := t.sumCounter(bpf.PodnetCounterCOUNTER_LISTENERS_FULL)
	if err != nil {
		return err
	}
	if full == 0 && t.listenersFound {
		return t.walkListeners(fn)
	}
	out, err := run(t.iters.listenDrops)
	if err != nil {
		return fmt.Errorf("scanning listeners: %w", err)
	}
	if len(out)%listenDropsSize != 0 {
		return fmt.Errorf("listener scan: %d bytes is not a whole number of %d-byte records", len(out), listenDropsSize)
	}
	seen := map[uint64]bool{}
	for rec := range slices.Chunk(out, listenDropsSize) {
		r := (*bpf.PodnetListenDrops)(unsafe.Pointer(unsafe.SliceData(rec)))
		if !seen[r.Sk] {
			seen[r.Sk] = true
			fn(r)
		}
	}
	return nil
}

// walkListeners runs the walk of `listeners` (bpf/progress.h), which writes each listener's
// drops into its value, then reads the map in batches. An entry added after the walk has no
// socket yet (Sk 0) and waits for the next scan.
func (t *Tracer) walkListeners(fn func(*bpf.PodnetListenDrops)) error {
	if _, err := t.iters.listenerWalk.Run(&ebpf.RunOptions{}); err != nil {
		return fmt.Errorf("scanning listeners: %w", err)
	}
	keys := make([]uint64, listenerBatch)
	values := make([]bpf.PodnetListenDrops, listenerBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.coll.Maps[bpf.PodnetMapListeners].BatchLookup(&cursor, keys, values, nil)
		for i := range n {
			if values[i].Sk != 0 {
				fn(&values[i])
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading listeners: %w", err)
		}
	}
}

// listenerBatch is how many listeners one batch syscall reads.
const listenerBatch = 256
