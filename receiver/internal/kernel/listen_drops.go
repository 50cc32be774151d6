//go:build linux

package kernel

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/podnet/podnet/bpf"
)

const listenDropsSize = int(unsafe.Sizeof(bpf.PodnetListenDrops{}))

// ListenDrops runs the listener scan (bpf/progress.h): fn gets every listening TCP socket that
// some process holds, once each, with the SYNs and completed handshakes it dropped since it was
// created (its accept queue full, or no memory for a request: the kernel's ListenDrops, per
// listener). No hook sees these drops without kprobes: the kernel frees the dropped SYN as
// consumed, with no drop reason. A walk of every process's descriptors: run it per metrics
// interval, not per event.
func (t *Tracer) ListenDrops(fn func(*bpf.PodnetListenDrops)) error {
	if t.iters == nil {
		return t.iterErr
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
