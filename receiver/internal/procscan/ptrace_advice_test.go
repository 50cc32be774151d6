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
