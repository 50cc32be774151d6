//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"time"

	"github.com/podnet/podnet/bpf"
)

// Detach stops every program for good: once it returns, none is running or will run again,
// so the ring holds every event the programs will ever write and the counters are final.
// Shutdown detaches before it drains the ring: draining first would race with the node's
// traffic, which never stops writing. The maps and the ring stay readable until Close.
//
// The links close one at a time, ~0.2 s for all of them: first the programs are told to stop
// reporting (cut), so that the ring and the aggregates end at one moment for every hook.
// Closing a link does not wait for a run in progress on another CPU; a map-in-map update does
// (the kernel waits out running programs before the update returns: maybe_wait_bpf_programs in
// kernel/bpf/syscall.c), so Detach makes one on the aggregation slot.
func (t *Tracer) Detach() error {
	var errs []error
	if err := t.cut(); err != nil {
		errs = append(errs, fmt.Errorf("stopping the programs' reports: %w", err))
	}
	if err := t.lastProgress(); err != nil {
		errs = append(errs, fmt.Errorf("reading open connections: %w", err))
	}
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if err := t.waitForPrograms(); err != nil {
		errs = append(errs, fmt.Errorf("waiting for running programs: %w", err))
	}
	return errors.Join(errs...)
}

// lastProgress reads the open connections for the last time, at the cut, while the programs
// still keep their entries; the drains after Detach read none. Once the programs are detached,
// a connection that closes leaves its entry, and a new socket on its memory would be read under
// that entry's role and counters (found by an independent check: server-role series at clients'
// ephemeral ports, with the new connections' bytes, in the last emission under load).
func (t *Tracer) lastProgress() error {
	iv := t.aggregates
	iv.mu.Lock()
	defer iv.mu.Unlock()
	err := t.readProgress()
	t.progressDone = true
	return err
}

// cut makes every program stop reporting (bpf/ring.h `stopping`), still attached: a run that
// has not read the flag yet may still report, and the detach's wait covers it.
func (t *Tracer) cut() error {
	if err := t.coll.Variables[bpf.PodnetVarStopping].Set(uint8(1)); err != nil {
		return err
	}
	t.counted = time.Now()
	return nil
}

// waitForPrograms updates the current aggregation slot with the interval map it already holds.
func (t *Tracer) waitForPrograms() error {
	iv := t.aggregates
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.point(iv.current)
}
