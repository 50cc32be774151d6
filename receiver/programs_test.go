package podnetreceiver

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/receiver/internal/kernel"
)

// loadedPrograms returns the ids of a started receiver's programs.
func loadedPrograms(t testing.TB, r any) []ebpf.ProgramID {
	t.Helper()
	tr, ok := receiverOf(r).src.(*kernel.Tracer)
	if !ok {
		t.Fatalf("receiver has no kernel tracer (not started?)")
	}
	ids := tr.ProgramIDs()
	if len(ids) == 0 {
		t.Fatal("a started receiver has programs loaded")
	}
	return ids
}

// receiverOf is the receiver behind what the factory created (the shared wrapper or not).
func receiverOf(r any) *podnetReceiver {
	if s, ok := r.(*shared); ok {
		return s.podnetReceiver
	}
	return r.(*podnetReceiver)
}

// stillLoaded returns which of the ids are still loaded. Other processes' podnet programs
// (parallel test packages, benchmarks) do not count: only these ids do.
func stillLoaded(t testing.TB, ids []ebpf.ProgramID) []ebpf.ProgramID {
	t.Helper()
	var alive []ebpf.ProgramID
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Close()
		alive = append(alive, id)
	}
	return alive
}

// leftLoaded waits for the ids to be unloaded and returns those still loaded after 5 s. The
// kernel frees a program once the last reference goes, and a tracepoint link drops its reference
// only after an RCU grace period: right after Close returns, an id may still resolve.
func leftLoaded(t testing.TB, ids []ebpf.ProgramID) []ebpf.ProgramID {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := stillLoaded(t, ids)
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}
