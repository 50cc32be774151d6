//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/podnet/podnet/bpf"
)

// setRings sizes the shared ring, the array of per-CPU rings and the wakeup mark for opts. It
// returns the size of each CPU's ring, 0 when the shared ring is used. The ring not used keeps
// one page (the programs still name it) and one empty slot.
func setRings(spec *ebpf.CollectionSpec, opts Options) (uint32, error) {
	page := uint32(os.Getpagesize())
	shared, perCPU, cpus := opts.RingBufferSize, uint32(0), 1
	switch {
	case !opts.sendsEvents():
		shared = page // unused: no events are sent
	case opts.PerCPURings:
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return 0, fmt.Errorf("counting the CPUs for per-CPU ring buffers: %w", err)
		}
		cpus, perCPU, shared = n, cpuRingSize(opts.RingBufferSize, n), page
	}
	spec.Maps[bpf.PodnetMapEvents].MaxEntries = shared
	outer := spec.Maps[bpf.PodnetMapCpuEvents]
	outer.MaxEntries = uint32(cpus)
	outer.InnerMap.MaxEntries = max(perCPU, page) // the template the kernel checks each ring against
	// Wake the reader when a quarter of a ring is waiting: early enough to drain a burst
	// before the ring fills, rare enough to cost nothing at steady load.
	mark := shared
	if perCPU > 0 {
		mark = perCPU
	}
	if err := spec.Variables[bpf.PodnetVarWakeupBytes].Set(uint64(mark / 4)); err != nil {
		return 0, err
	}
	return perCPU, spec.Variables[bpf.PodnetVarPerCpuRings].Set(perCPU > 0)
}

// openReader opens the reader of the ring setRings chose: every CPU's ring when cpuRing (its
// size) is not 0, the shared one otherwise. It returns a nil interface on failure.
func openReader(coll *ebpf.Collection, spec *ebpf.CollectionSpec, cpuRing uint32) (EventReader, error) {
	if cpuRing == 0 {
		r, err := ringbuf.NewReader(coll.Maps[bpf.PodnetMapEvents])
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r, err := openCPURings(coll.Maps[bpf.PodnetMapCpuEvents], spec.Maps[bpf.PodnetMapCpuEvents].InnerMap, cpuRing)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Rings is how many ring buffers the programs write events to, and the size of each: none when
// they send none, the shared ring, or one per possible CPU with Options.PerCPURings, each its
// share of the budget (at least 64 KiB) — what the kernel holds, which the start log reports
// beside ring_buffer_size.
func (t *Tracer) Rings() (n, bytesEach int) {
	switch r := t.events.(type) {
	case *cpuRings:
		return len(r.rings), r.rings[0].BufferSize()
	case *ringbuf.Reader:
		return 1, r.BufferSize()
	default:
		return 0, 0
	}
}
