package kernel

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// Sending events needs the syscall hooks (pids, connect() failures before SYN_SENT); counting
// in the kernel loads the state program alone, so no syscall on the node pays for a
// tracepoint.
func TestProgramsLoadedPerMode(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		mode      HookMode
		aggregate bool
		syscalls  int
	}{{HooksAuto, false, len(syscallHooks)}, {HooksAuto, true, 0}, {HooksTracepoint, false, len(syscallHooks) + 1}, {HooksTracepoint, true, 0}} {
		// HooksTracepoint with the syscall hooks: one more on the error-report tracepoint
		// (collectedProgram), which this kernel has.
		o := Options{Hooks: tc.mode, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, AggregateInKernel: tc.aggregate, MaxAggregates: 16}
		tr, err := Open(o)
		require.NoError(t, err)
		require.NoError(t, tr.IteratorsUnavailable(), "the BPF iterators load on this kernel")
		assert.Equal(t, tc.aggregate && tr.Mode() == HooksTPBTF && markHooksExist(), tr.MarkedReads(), "marked reads exactly with in-kernel aggregation on tp_btf")
		programs := stateHooks(tr.Mode()) + tc.syscalls + markHooks(tr)
		if !tc.aggregate {
			require.True(t, uringProgram(o), "this kernel has what uring_complete reads")
			programs++ // with the syscall hooks: io_uring connects' completions
		}
		const iterators = 5 // live progress (one variant), the start-up scan's two passes, the listener scan (descriptors, and the walk of listeners)
		assert.Len(t, tr.ProgramIDs(), programs+iterators, "%s, aggregate=%v", tc.mode, tc.aggregate)
		assert.Len(t, tr.links, programs, "%s, aggregate=%v: hooks attached (iterators only run when read)", tc.mode, tc.aggregate)
		assert.Equal(t, tc.aggregate, tr.Events() == nil, "a ring reader exactly when events are sent")
		require.NoError(t, tr.Close())
	}
}

// The accept hook reads sockets with plain loads wherever bpf_rdonly_cast exists (6.2+): the
// detection must find it on such kernels, and ProbedReads must turn it off.
func TestAcceptReadsCastWhereSupported(t *testing.T) {
	netnstest.RequireRoot(t)
	var uts unix.Utsname
	require.NoError(t, unix.Uname(&uts))
	var major, minor int
	_, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	require.NoError(t, err)
	if major > 6 || (major == 6 && minor >= 2) {
		assert.True(t, castSupported(), "kernel %d.%d has bpf_rdonly_cast", major, minor)
	}
	for _, probed := range []bool{false, true} {
		tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, MaxAggregates: 16, ProbedReads: probed})
		require.NoError(t, err)
		assert.Equal(t, castSupported() && !probed, tr.CastReads(), "probed=%v", probed)
		require.NoError(t, tr.Close())
	}
}

// A kernel that lists bpf_rdonly_cast but whose verifier refuses it to these programs still
// gets podnet: the same hook mode loads with the probe-read accept variants, and why is kept.
func TestCastRefusedFallsBackToProbedReads(t *testing.T) {
	netnstest.RequireRoot(t)
	if !castSupported() {
		t.Skip("this kernel has no bpf_rdonly_cast (before 6.2): no cast variant to refuse")
	}
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, MaxAggregates: 16, refuseCast: true})
	require.NoError(t, err)
	defer tr.Close()
	assert.False(t, tr.CastReads())
	assert.Equal(t, HooksTPBTF, tr.Mode(), "the cast fallback must not cost the cheaper hook mode")
	require.Len(t, tr.Skipped(), 1)
	assert.Contains(t, tr.Skipped()[0].Error(), "bpf_rdonly_cast")
	for _, h := range syscallHooks {
		assert.Contains(t, tr.coll.Programs, h.prog)
		if h.cast != "" {
			assert.NotContains(t, tr.coll.Programs, h.cast)
		}
	}
	assert.Len(t, tr.links, stateHooks(HooksTPBTF)+len(syscallHooks)+1, "and io_uring's completions")
}

// stateHooks is how many programs a mode attaches besides the syscall hooks: its state
// programs and its error and reset programs.
func stateHooks(m HookMode) int {
	return len(statePrograms[m]) + len(errorPrograms[m])
}

// markHooks is how many programs mark sockets for the live reads (bpf/progress.h).
func markHooks(tr *Tracer) int {
	if !tr.MarkedReads() {
		return 0
	}
	n := 0
	for p := range markPrograms {
		if tr.coll.Programs[p] != nil {
			n++
		}
	}
	return n
}

// Marked reads need the tcp_sendmsg_locked tracepoint (6.12+): on such a kernel the detection
// must find both hooks.
func TestMarkHooksFoundWhereTheKernelHasThem(t *testing.T) {
	var uts unix.Utsname
	require.NoError(t, unix.Uname(&uts))
	var major, minor int
	_, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	require.NoError(t, err)
	if major < 6 || (major == 6 && minor < 12) {
		t.Skipf("kernel %d.%d has no tcp_sendmsg_locked tracepoint (6.12+): the walk of every connection stays", major, minor)
	}
	assert.True(t, markHooksExist(), "kernel %d.%d: tcp_sendmsg_locked and sk_data_ready in its BTF", major, minor)
}
