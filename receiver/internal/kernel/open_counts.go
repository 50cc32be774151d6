//go:build linux && (amd64 || arm64)

package kernel

import "github.com/podnet/podnet/bpf"

// openCounts keeps, per metric key, the running sum of the kernel's opens minus closes
// (agg_value.active_delta, marked reads): a drain reports it as the key's Active, also for keys
// whose connections did nothing in the interval and so are not in the kernel's map. Bounded:
// a key stays only while its sum is not 0, and every open connection adds to one key.
type openCounts struct {
	keys  map[bpf.PodnetAggKey]*openCount
	drain uint64 // drains so far: which keys the current one had
}

type openCount struct {
	n     int64
	drain uint64 // the last drain that had the key
}

func newOpenCounts() openCounts {
	return openCounts{keys: map[bpf.PodnetAggKey]*openCount{}}
}

// drained adds a drained key's opens minus closes and sets its Active to the running sum.
// A sum below 0 (a close counted in an interval before its open: only a start-up scan racing a
// close, for one interval) reports 0 and is kept.
func (o *openCounts) drained(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
	c := o.keys[*k]
	if c == nil {
		if v.ActiveDelta == 0 {
			return
		}
		c = &openCount{}
		o.keys[*k] = c
	}
	c.n += v.ActiveDelta
	c.drain = o.drain
	v.Active = uint64(max(c.n, 0))
	if c.n == 0 {
		delete(o.keys, *k)
	}
}

// moved adds the -1s of closes the kernel could not put in their key's interval entry (its map
// full: bpf/maps.h active_moved). Called before the drain's keys, so a key the drain has reports
// the sum with them; one it lacks is reported by rest, or not at all when nothing is open.
func (o *openCounts) moved(k *bpf.PodnetAggKey, d int64) {
	c := o.keys[*k]
	if c == nil {
		if d == 0 {
			return
		}
		c = &openCount{}
		o.keys[*k] = c
	}
	c.n += d
	if c.n == 0 {
		delete(o.keys, *k)
	}
}

// rest hands fn the keys with open connections that the drain did not have, as aggregates that
// counted nothing but their open connections, and ends the drain.
func (o *openCounts) rest(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) {
	for k, c := range o.keys {
		if c.drain != o.drain && c.n > 0 {
			key := k
			fn(&key, &bpf.PodnetAggValue{Active: uint64(c.n)})
		}
	}
	o.drain++
}
