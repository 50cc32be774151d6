package kernel

import (
	"net"
	"testing"
)

// BenchmarkKernelCostParallel is BenchmarkKernelCostPerConnection with as many concurrent
// dialers as GOMAXPROCS: run it with -cpu 1,2 to see what the programs cost per connection
// when the CPUs write the one shared ring (events) at once, against the in-kernel
// aggregation that writes none, and against a ring per CPU (no lock shared between CPUs).
// The growth from 1 to 2 busy CPUs is the contention the README's many-core model starts from. The ring holds the whole run (no reader competes
// for the CPUs): keep -benchtime at or below 20000x.
func BenchmarkKernelCostParallel(b *testing.B) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"events", Options{NoLiveReads: true}},
		{"events-per-cpu-rings", Options{NoLiveReads: true, PerCPURings: true}},
		{"aggregate", Options{AggregateInKernel: true}},
	} {
		b.Run(c.name, func(b *testing.B) { benchKernelCostParallel(b, c.opts) })
	}
}

func benchKernelCostParallel(b *testing.B, opts Options) {
	measureKernelCost(b, opts, 1<<26, func(_ *Tracer, addr string) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				_ = c.Close()
			}
		})
	})
}
