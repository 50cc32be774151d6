package procscan

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/netnstest"
)

// The advice follows what this process holds: root holds CAP_SYS_PTRACE, so the warning names
// something else (found by an independent check: it asked for the capability podnet had).
func TestPtraceAdviceDoesNotAskForWhatIsHeld(t *testing.T) {
	netnstest.RequireRoot(t)
	assert.Contains(t, ptraceAdvice(), "podnet holds CAP_SYS_PTRACE, so something else refuses")
}

func TestCapSet(t *testing.T) {
	status := "Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t0000000000080000\nCapBnd:\t000001ffffffffff\n"
	eff, ok := capSet(status, "CapEff:")
	assert.True(t, ok)
	assert.Equal(t, uint64(1)<<capSysPtrace, eff)
	bnd, ok := capSet(status, "CapBnd:")
	assert.True(t, ok)
	assert.Equal(t, uint64(0x1ffffffffff), bnd)
	_, ok = capSet(status, "CapAmb:")
	assert.False(t, ok)
}
