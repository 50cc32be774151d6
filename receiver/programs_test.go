package podnetreceiver

import (
	"errors"
	"os"
	"testing"

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
