package kernel

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// BenchmarkRecursionCover is what the recursion cover (bpf/recursion.h: the second tp_btf
// state program, which does the runs the kernel skipped) costs a connection beyond the floor
// of any program at that hook. Run statistics read the clock twice per run, and that is most
// of a short program's figure: an empty tp_btf program attached after podnet's on the same
// tracepoint measures the floor in the same runs. Per connection (connect, accept, close
// between loopback sockets; logs + metrics): the cover's ns and runs, the empty program's ns
// per run, and cover-over-floor-ns/conn, the cover's own work (its dispatch, which the
// statistics do not see, is the empty program's too). The state program itself is reported
// the same way. Root only.
func BenchmarkRecursionCover(b *testing.B) {
	netnstest.RequireRoot(b)
	enableBPFStats(b)
	tr, err := Open(Options{Hooks: HooksTPBTF, RingBufferSize: 1 << 24, MaxTrackedConnections: 65536, MaxAggregates: 1 << 16,
		AggregateInKernel: true, Events: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: "inet_sock_set_state", License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: empty})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	addr, _ := netnstest.LoopbackServer(b)
	cover, state := tr.coll.Programs[bpf.PodnetProgStateTpBtfNested], tr.coll.Programs[bpf.PodnetProgStateTpBtf]
	read := func() [3]bpfrun.Stats {
		return [3]bpfrun.Stats{bpfrun.Of(b, cover), bpfrun.Of(b, state), bpfrun.Of(b, empty)}
	}
	before := read()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		if b.N > 1000 {
			drain(tr)
		}
	}
	b.StopTimer()
	after := read()
	floor := bpfrun.PerRun(before[2], after[2])
	perConn := func(i int) (ns, runs float64) {
		return float64(after[i].NS-before[i].NS) / float64(b.N), float64(after[i].Runs-before[i].Runs) / float64(b.N)
	}
	coverNS, coverRuns := perConn(0)
	stateNS, stateRuns := perConn(1)
	b.ReportMetric(coverNS, "cover-ns/conn")
	b.ReportMetric(coverRuns, "cover-runs/conn")
	b.ReportMetric(floor, "floor-ns/run")
	b.ReportMetric(coverNS-coverRuns*floor, "cover-over-floor-ns/conn")
	b.ReportMetric(stateNS-stateRuns*floor, "state-over-floor-ns/conn")
}
