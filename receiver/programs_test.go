package receiver

import (
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// podnetPrograms lists the loaded BPF programs that carry podnet's program names, so a test
// can prove Shutdown unloaded everything it loaded.
func podnetPrograms(t testing.TB) []string {
	t.Helper()
	ours := []string{bpf.PodnetProgStateTpBtf, bpf.PodnetProgStateTracepoint, bpf.PodnetProgEnterConnect,
		bpf.PodnetProgExitConnect, bpf.PodnetProgExitAccept, bpf.PodnetProgExitAccept4}
	var found []string
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		_ = p.Close()
		if err == nil && slices.Contains(ours, info.Name) {
			found = append(found, info.Name)
		}
	}
	slices.Sort(found)
	return found
}
