package kernel

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// BenchmarkKernelCostPerConnection makes loopback connections (connect, accept, close) with
// the programs attached and reports what they cost the kernel per connection, from the
// kernel's own BPF run statistics (BPF_ENABLE_STATS, held for the benchmark's length):
// ns-in-bpf/conn for all programs together and runs/conn. Compare with ns/op, the cost of a
// whole connection. Root only.
func BenchmarkKernelCostPerConnection(b *testing.B) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"events", Options{NoLiveReads: true}},                                  // logs alone
		{"events-per-cpu-rings", Options{NoLiveReads: true, PerCPURings: true}}, // ring_buffers: per_cpu
		{"events-probed-reads", Options{ProbedReads: true, NoLiveReads: true}},  // kernels before 6.2
		{"aggregate", Options{AggregateInKernel: true}},
		{"events+aggregate", Options{AggregateInKernel: true, Events: true}}, // logs + metrics
		// service_backends on, for connections to no Service: the netfilter program on every
		// packet, one byte load per client connection (issue 14: compare with events+aggregate).
		{"events+aggregate+backends", Options{AggregateInKernel: true, Events: true, NATNetns: "/proc/thread-self/ns/net"}},
		// service_backends.socket_lb: a read of connect()'s sockaddr per connect (compare with events).
		{"events+socketlb", Options{NoLiveReads: true, SocketLB: true}},
	} {
		b.Run(c.name, func(b *testing.B) { benchKernelCost(b, c.opts) })
	}
}

func benchKernelCost(b *testing.B, opts Options) {
	measureKernelCost(b, opts, 1<<24, func(tr *Tracer, addr string) { dialAndClose(b, tr, addr, opts.sendsEvents()) })
}

// dialAndClose makes b.N loopback connections to addr, each closed at once, draining tr's ring
// as it goes when events are sent.
func dialAndClose(b *testing.B, tr *Tracer, addr string, events bool) {
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		if events && b.N > 1000 {
			drain(tr) // keep the ring from filling: the reader's cost is not what is measured
		}
	}
}

// measureKernelCost opens a tracer with opts and a ring of ringSize, runs connect (b.N
// loopback connections to addr, timed) and reports what the programs cost per connection, from
// the kernel's BPF run statistics.
func measureKernelCost(b *testing.B, opts Options, ringSize uint32, connect func(tr *Tracer, addr string)) {
	netnstest.RequireRoot(b)
	enableBPFStats(b)
	opts.Hooks, opts.RingBufferSize, opts.MaxTrackedConnections, opts.MaxAggregates = HooksAuto, ringSize, 65536, 1<<16
	tr, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	addr, _ := netnstest.LoopbackServer(b)
	before := programStats(b, tr)
	b.ResetTimer()
	connect(tr, addr)
	b.StopTimer()
	after := programStats(b, tr)
	var total bpfrun.Stats
	for name, a := range after {
		d := bpfrun.Stats{NS: a.NS - before[name].NS, Runs: a.Runs - before[name].Runs}
		total = total.Add(d)
		if d.Runs > 0 { // where the cost goes, program by program: profile before optimising
			b.ReportMetric(float64(d.NS)/float64(b.N), "ns-in-"+name+"/conn")
			b.ReportMetric(float64(d.Runs)/float64(b.N), "runs-"+name+"/conn")
		}
	}
	b.ReportMetric(float64(total.NS)/float64(b.N), "ns-in-bpf/conn")
	b.ReportMetric(float64(total.Runs)/float64(b.N), "runs/conn")
}

// enableBPFStats turns the kernel's BPF run statistics on until the benchmark ends. It holds
// a BPF_ENABLE_STATS fd, which the kernel counts per holder, rather than writing the
// kernel.bpf_stats_enabled sysctl: benchmarks run side by side (bench/bpf-versus.sh) would
// otherwise switch the statistics off under each other and leave them on for good.
func enableBPFStats(b *testing.B) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stats.Close() })
}

// programStats is each loaded program's run statistics, by program name.
func programStats(b *testing.B, tr *Tracer) map[string]bpfrun.Stats {
	s := make(map[string]bpfrun.Stats, len(tr.coll.Programs))
	for name, p := range tr.coll.Programs {
		s[name] = bpfrun.Of(b, p)
	}
	return s
}
