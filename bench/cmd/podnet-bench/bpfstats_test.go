package main

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/bench/internal/agentproc"
)

// The window's BPF cost is the difference per program; one loaded during the window counts
// from zero, and programs of the same name add up.
func TestBPFSince(t *testing.T) {
	before := map[ebpf.ProgramID]agentproc.BPFProgram{
		1: {Name: "state_tp_btf", RunTime: 5 * time.Millisecond, Runs: 100},
		2: {Name: "accept_cast", RunTime: time.Millisecond, Runs: 10},
	}
	after := map[ebpf.ProgramID]agentproc.BPFProgram{
		1: {Name: "state_tp_btf", RunTime: 9 * time.Millisecond, Runs: 300},
		2: {Name: "accept_cast", RunTime: 2 * time.Millisecond, Runs: 30},
		3: {Name: "accept_cast", RunTime: time.Millisecond, Runs: 5},
	}
	r := bpfSince(before, after)
	assert.Equal(t, 6*time.Millisecond, r.runTime)
	assert.Equal(t, uint64(225), r.runs)
	assert.Equal(t, map[string]time.Duration{"state_tp_btf": 4 * time.Millisecond, "accept_cast": 2 * time.Millisecond}, r.byProgram)
	assert.InDelta(t, 6.0, r.perConn(1000), 1e-9, "µs per connection")
}
