package examples

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

var podnetProgramNames = []string{
	bpf.PodnetProgStateTpBtf, kernelName(bpf.PodnetProgStateTracepoint), bpf.PodnetProgEnterConnect,
	bpf.PodnetProgExitConnect, bpf.PodnetProgExitAccept, bpf.PodnetProgExitAccept4,
	bpf.PodnetProgAcceptCast, bpf.PodnetProgAccept4Cast,
}

// kernelName is a program's name as the kernel keeps it (BPF_OBJ_NAME_LEN: 15 bytes).
func kernelName(name string) string { return name[:min(len(name), 15)] }

// heldPodnetPrograms returns the podnet BPF programs (id → name) whose program or link fds
// process pid holds. Other tests may load podnet programs at the same time, so "ours" must
// be the collector's own, not every program with a podnet name.
func heldPodnetPrograms(t *testing.T, pid int) map[ebpf.ProgramID]string {
	t.Helper()
	fdinfo := filepath.Join("/proc", strconv.Itoa(pid), "fdinfo")
	entries, err := os.ReadDir(fdinfo)
	if err != nil {
		t.Fatal(err)
	}
	held := map[ebpf.ProgramID]string{}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(fdinfo, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			v, ok := strings.CutPrefix(sc.Text(), "prog_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				t.Fatalf("%s: %q: %v", f.Name(), sc.Text(), err)
			}
			if name, ok := programName(ebpf.ProgramID(id)); ok && slices.Contains(podnetProgramNames, name) {
				held[ebpf.ProgramID(id)] = name
			}
		}
		_ = f.Close()
	}
	return held
}

func programName(id ebpf.ProgramID) (string, bool) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", false
	}
	return info.Name, true
}

// loadedPrograms lists every BPF program loaded in the kernel (id → name).
func loadedPrograms(t *testing.T) map[ebpf.ProgramID]string {
	t.Helper()
	loaded := map[ebpf.ProgramID]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return loaded
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		if name, ok := programName(id); ok {
			loaded[id] = name
		}
	}
}
