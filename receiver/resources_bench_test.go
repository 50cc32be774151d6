package podnetreceiver

import (
	"testing"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

// BenchmarkResourceLookup is the cached case every ResourceLogs pays once per batch.
func BenchmarkResourceLookup(b *testing.B) {
	cfg := NewDefaultConfig()
	r := newResources(cfg, attribution.None{})
	keys := []resourceKey{{netnsIno: 1, cgroupID: 10}, {netnsIno: 2, cgroupID: 20}, {netnsIno: 3, cgroupID: 30}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.get(keys[i%len(keys)])
		i++
	}
}

// BenchmarkResourceBuild is the miss: a new local end, or every key after resourceTTL.
func BenchmarkResourceBuild(b *testing.B) {
	cfg := NewDefaultConfig()
	r := newResources(cfg, fixedPeers{})
	b.ReportAllocs()
	for b.Loop() {
		clear(r.cache)
		r.get(resourceKey{netnsIno: 1, cgroupID: 10})
	}
}
