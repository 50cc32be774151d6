package capsets

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	status := "Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t0000000000080000\nCapBnd:\t000001ffffffffff\n"
	eff, ok := Parse(status, "CapEff:")
	assert.True(t, ok)
	assert.Equal(t, uint64(1)<<SysPtrace, eff)
	bnd, ok := Parse(status, "CapBnd:")
	assert.True(t, ok)
	assert.Equal(t, uint64(0x1ffffffffff), bnd)
	_, ok = Parse(status, "CapAmb:")
	assert.False(t, ok)
}
