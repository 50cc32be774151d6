//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// kernelAtomics says whether the kernel's verifier takes BPF's atomic exchanges (5.12+): the
// claim of a server connection's open by accept() or its close (bpf/state.h close_claims_open,
// accept_claims_open), and the close's claim of what live reads counted. A program that needs
// nothing else is loaded once to find out; only the verifier's refusal (EINVAL) says no, so
// that an error of another kind (a missing privilege) is left to the programs' own load, which
// names it.
var kernelAtomics = sync.OnceValue(func() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0),
			asm.CmpXchg.Mem(asm.RFP, asm.R1, asm.DWord, -8),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		return !errors.Is(err, unix.EINVAL)
	}
	prog.Close()
	return true
})
