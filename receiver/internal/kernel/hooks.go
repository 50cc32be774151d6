//go:build linux && (amd64 || arm64)

package kernel // import "github.com/podnet/podnet/receiver/internal/kernel"

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
)

// candidates is the order in which modes are tried: cheapest first. fentry/kprobe variants are
// not built: they add nothing the tracepoints miss, and could not be verified on kernels without
// them (see README, Kernel requirements).
func candidates(m HookMode) ([]HookMode, error) {
	switch m {
	case HooksAuto, "":
		return []HookMode{HooksTPBTF, HooksTracepoint}, nil
	case HooksTPBTF, HooksTracepoint:
		return []HookMode{m}, nil
	}
	return nil, fmt.Errorf("unknown hook mode %q (valid: %s)", m, joinModes())
}

func joinModes() string {
	names := make([]string, len(HookModes))
	for i, m := range HookModes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// statePrograms are the programs each mode attaches to inet_sock_set_state, in this order; the
// other mode's are not loaded. tp_btf has two instances: a run the kernel skips because it
// interrupted the first is done by the second (bpf/recursion.h), which must run after it.
var statePrograms = map[HookMode][]string{
	HooksTPBTF:      {bpf.PodnetProgStateTpBtf, bpf.PodnetProgStateTpBtfNested},
	HooksTracepoint: {bpf.PodnetProgStateTracepoint},
}

// errorPrograms note, for a connection's end, what only happens before it: the error a
// connecting socket reports (bpf/state.h on_connect_error: without it a failed connect whose
// application read the error first and closed the socket reads "cancelled") and a reset received
// (on_reset_received: the close reason, where sk_err could be read and cleared first) and a
// retransmitted SYN-ACK's first send (on_synack_retransmit: the server's handshake timed, not
// estimated). tp_btf only: the classic error-report tracepoint does not name the socket, nor the
// classic SYN-ACK one its request; all run only on errors, resets and retransmitted SYN-ACKs,
// never per connection.
var errorPrograms = map[HookMode][]string{HooksTPBTF: {bpf.PodnetProgErrorReportTpBtf, bpf.PodnetProgResetReceivedTpBtf, bpf.PodnetProgSynackRetransmitTpBtf}}

// collectedProgram is errorPrograms' note of a connect() that only collects an earlier
// failure (bpf/state.h on_failure_collected), for the classic tracepoint mode: there no tp_btf
// program sees the error report, and without the note that failure is reported twice. Loaded
// with the syscall hooks, where the kernel has the tracepoint (5.14+): before, the failure is
// reported twice (README, kernel table).
func collectedProgram(mode HookMode, opts Options) bool {
	return mode == HooksTracepoint && opts.syscallHooks() && errorReportTracepoint()
}

// uringProgram says whether uring_complete is attached (bpf/podnet.bpf.c): io_uring accepts
// make no accept() system call, nor do io_uring connects that fail before their SYN, so with the
// syscall hooks, where the kernel has what it reads (features.go uring; elsewhere those accepts
// are reported at their close and those failures not at all, as the README says).
func uringProgram(opts Options) bool {
	return opts.syscallHooks() && kernelFeatures().uring && !opts.noURing
}

// coveredPrograms are the tp_btf state programs, whose skipped runs lose nothing: the first
// one's are done by the second, and the second is only skipped where the first has run.
var coveredPrograms = map[string]bool{bpf.PodnetProgStateTpBtf: true, bpf.PodnetProgStateTpBtfNested: true}

// syscallHooks are attached in every mode when events are sent, never when aggregating in the
// kernel: while one syscall tracepoint is attached, every syscall on the node takes the
// kernel's slow tracing path, and metrics need neither pids nor anything else only they see
// (except connect() failures before SYN_SENT, see bpf/aggregate.h).
//
// cast, where set, names a variant that reads the socket it finds with plain loads through a
// pointer typed by bpf_rdonly_cast (cheaper than probe reads: README, Kernel requirements); it
// replaces prog where the kernel has that kfunc.
var syscallHooks = []struct{ prog, cast, group, name string }{
	{bpf.PodnetProgEnterConnect, "", "syscalls", "sys_enter_connect"},
	{bpf.PodnetProgExitConnect, "", "syscalls", "sys_exit_connect"},
	{bpf.PodnetProgExitAccept4, bpf.PodnetProgAccept4Cast, "syscalls", "sys_exit_accept4"},
	{bpf.PodnetProgExitAccept, bpf.PodnetProgAcceptCast, "syscalls", "sys_exit_accept"},
}

// usesCast says whether open loads the bpf_rdonly_cast variants: where the kernel has the
// kfunc, unless told not to, and only when the syscall hooks are loaded at all.
func usesCast(opts Options) bool {
	return !opts.ProbedReads && opts.syscallHooks() && castSupported()
}

// refuseCastPrograms replaces the cast variants' code with a read of an uninitialised
// register, which every verifier rejects (tests of the fallback only).
func refuseCastPrograms(spec *ebpf.CollectionSpec) {
	for _, h := range syscallHooks {
		if p, ok := spec.Programs[h.cast]; ok {
			p.Instructions = asm.Instructions{asm.Mov.Reg(asm.R0, asm.R5), asm.Return()}
		}
	}
}

func attachState(mode HookMode, prog *ebpf.Program) (link.Link, error) {
	if mode == HooksTPBTF {
		return link.AttachTracing(link.TracingOptions{Program: prog})
	}
	return link.Tracepoint("sock", "inet_sock_set_state", prog, nil)
}
