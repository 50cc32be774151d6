package procscan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A scan marks the keys asked before it that it did not find either; they ask no more, and
// stay marked across scans until one finds them. Keys asked while it walked wait for the next.
func TestMissesSettle(t *testing.T) {
	var m misses
	first := newSnapshot(true, nil)
	gone, later := key{netns: 7}, key{netns: 8}
	assert.True(t, m.ask(first, gone), "an unknown key asks for a scan")

	asked := m.take()
	assert.True(t, m.ask(first, later), "asked while the scan walks")
	second := newSnapshot(true, first)
	settle(asked, first, second)
	assert.False(t, m.ask(second, gone), "the scan did not find it: it asks no more")
	assert.True(t, m.ask(second, later), "not settled by a scan that began before it asked")

	third := newSnapshot(true, second)
	third.addProcess(7, Ref{PodUID: "p"}, true)
	settle(m.take(), second, third)
	assert.NotContains(t, third.fruitless, gone, "found at last")
	assert.Contains(t, third.fruitless, later)

	fourth := newSnapshot(true, third)
	settle(m.take(), third, fourth)
	assert.Contains(t, fourth.fruitless, later, "carried while still unknown")
}
