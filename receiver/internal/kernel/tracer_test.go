package kernel

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// Sending events needs the syscall hooks (pids, connect() failures before SYN_SENT); counting
// in the kernel loads the state program alone, so no syscall on the node pays for a
// tracepoint.
func TestProgramsLoadedPerMode(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		aggregate bool
		programs  int
	}{{false, 1 + len(syscallHooks)}, {true, 1}} {
		tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, AggregateInKernel: tc.aggregate, MaxAggregates: 16})
		require.NoError(t, err)
		assert.Len(t, tr.ProgramIDs(), tc.programs, "aggregate=%v", tc.aggregate)
		assert.Len(t, tr.links, tc.programs, "aggregate=%v", tc.aggregate)
		require.NoError(t, tr.Close())
	}
}
