package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/netnstest"
)

// CountingSince is when the state programs began to attach: after the programs were loaded and
// verified (most of Open's time), so that the metric series that start there cover no time in
// which nothing was counted yet.
func TestCountingSinceIsWhenTheStateProgramsAttach(t *testing.T) {
	netnstest.RequireRoot(t)
	before := time.Now()
	tr := openEvents(t, 1<<16)
	after := time.Now()
	since := tr.CountingSince()
	assert.True(t, since.After(before) && !since.After(after), "within Open: %v in [%v, %v]", since, before, after)
	assert.Less(t, after.Sub(since), since.Sub(before), "after loading, which takes most of Open")
}
