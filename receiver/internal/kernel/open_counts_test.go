package kernel

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/bpf"
)

// drainOpen runs one drain of o over the given kernel deltas and returns every key's Active as
// the drain's fn saw it.
func drainOpen(t *testing.T, o *openCounts, deltas map[bpf.PodnetAggKey]int64) map[bpf.PodnetAggKey]uint64 {
	got := map[bpf.PodnetAggKey]uint64{}
	fn := func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		_, twice := got[*k]
		assert.False(t, twice, "key %+v handed to fn twice in one drain", *k)
		got[*k] = v.Active
	}
	for k, d := range deltas {
		v := &bpf.PodnetAggValue{ActiveDelta: d}
		o.drained(&k, v)
		fn(&k, v)
	}
	o.rest(fn)
	return got
}

// Marked reads: the kernel counts opens minus closes per key and interval; every drain reports
// each key's running sum, also for keys the kernel map did not have that interval, and forgets
// a key whose sum is back to 0.
func TestOpenCountsAreRunningSums(t *testing.T) {
	a, b := bpf.PodnetAggKey{Family: 2, ServerPort: 80}, bpf.PodnetAggKey{Family: 2, ServerPort: 443}
	o := newOpenCounts()
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 3, b: 1}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{a: 3, b: 1}))
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 3, b: 1}, drainOpen(t, &o, nil), "idle keys keep their open connections")
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 1, b: 1}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{a: -2}))
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 1, b: 0}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{b: -1}), "a key that reaches 0 is reported 0 once")
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 1}, drainOpen(t, &o, nil), "then forgotten")
	assert.Len(t, o.keys, 1)
}

// A close counted an interval before its open (a start-up scan racing the close) reports 0, not
// a negative count, and the open that follows brings the sum back.
func TestOpenCountsBelowZeroReportZero(t *testing.T) {
	a := bpf.PodnetAggKey{Family: 10, ServerPort: 8080}
	o := newOpenCounts()
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 0}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{a: -1}))
	assert.Empty(t, drainOpen(t, &o, nil), "nothing open to report")
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 0}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{a: 1}))
	assert.Empty(t, o.keys)
}

// A close whose key the interval map lacked (full) arrives apart (active_moved) and is taken
// out of the key's running sum before the drain's keys; a key it brings to 0 is forgotten and
// not reported, which the receiver reads as nothing open (settleActive).
func TestOpenCountsTakeMovedCloses(t *testing.T) {
	a, b := bpf.PodnetAggKey{Family: 2, ServerPort: 80}, bpf.PodnetAggKey{Family: 2, ServerPort: 443}
	o := newOpenCounts()
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 2, b: 1}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{a: 2, b: 1}))
	o.moved(&a, -1)
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{a: 1, b: 1}, drainOpen(t, &o, nil))
	o.moved(&a, -1)
	o.moved(&b, -1)
	assert.Equal(t, map[bpf.PodnetAggKey]uint64{b: 1}, drainOpen(t, &o, map[bpf.PodnetAggKey]int64{b: 1}), "b's close and a new open")
	assert.Len(t, o.keys, 1, "a forgotten")
}
