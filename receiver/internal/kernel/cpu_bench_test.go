//go:build linux && (amd64 || arm64)

package kernel

import (
	"net"
	"testing"

	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// BenchmarkKernelCPUPerConnection is the machine's whole CPU time per loopback connection (the
// client, the server's kernel side, softirqs, the programs and their dispatch) with no podnet
// programs and with each set loaded, in the same run. BPF run statistics stay off: they time
// each run (two clock reads), which inflates cheap runs, and they miss the dispatch around
// them. The ratio podnet/none is the figure; the machine must be otherwise idle.
func BenchmarkKernelCPUPerConnection(b *testing.B) {
	for _, c := range []struct {
		name string
		opts *Options
	}{
		{"none", nil},
		{"events", &Options{}},
		{"aggregate", &Options{AggregateInKernel: true}},
	} {
		b.Run(c.name, func(b *testing.B) { benchCPU(b, c.opts) })
	}
}

func benchCPU(b *testing.B, opts *Options) {
	netnstest.RequireRoot(b)
	var tr *Tracer
	if opts != nil {
		o := *opts
		o.Hooks, o.RingBufferSize, o.MaxTrackedConnections, o.MaxAggregates = HooksAuto, 1<<24, 65536, 1<<16
		var err error
		if tr, err = Open(o); err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
	}
	addr, _ := netnstest.LoopbackServer(b)
	before := bpfrun.BusyTicks(b)
	b.ResetTimer()
	for i := range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		if tr != nil && tr.Events() != nil && i%1000 == 999 {
			drain(tr) // the same reads in every variant that has a ring
		}
	}
	b.StopTimer()
	ticks := bpfrun.BusyTicks(b) - before
	b.ReportMetric(float64(ticks)*1e9/100/float64(b.N), "cpu-ns/conn") // USER_HZ is 100 on Linux
}
