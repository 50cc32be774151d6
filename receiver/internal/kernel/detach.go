//go:build linux

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Detach stops every program for good: once it returns, none is running or will run again,
// so the ring holds every event the programs will ever write and the counters are final.
// Shutdown detaches before it drains the ring: draining first would race with the node's
// traffic, which never stops writing. The maps and the ring stay readable until Close.
//
// Closing a link does not wait for a run in progress on another CPU; a map-in-map update does
// (the kernel waits out running programs before the update returns: maybe_wait_bpf_programs in
// kernel/bpf/syscall.c), so Detach makes one on the aggregation slot.
func (t *Tracer) Detach() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if err := t.waitForPrograms(); err != nil {
		errs = append(errs, fmt.Errorf("waiting for running programs: %w", err))
	}
	return errors.Join(errs...)
}

// waitForPrograms updates the aggregation slot with the interval map it already holds.
func (t *Tracer) waitForPrograms() error {
	iv := t.aggregates
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.slot.Update(uint32(0), iv.maps[iv.current], ebpf.UpdateAny)
}
