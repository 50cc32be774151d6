package kernel

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/bpfrun"
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
	measureKernelCost(b, Options{AggregateInKernel: true, Events: true}, 1<<24, func(tr *Tracer, addr string) {
		b.StopTimer()
		cover, state := tr.coll.Programs[bpf.PodnetProgStateTpBtfNested], tr.coll.Programs[bpf.PodnetProgStateTpBtf]
		if cover == nil {
			b.Fatal("the tp_btf state programs did not load on this kernel")
		}
		empty := attachEmptyStateProgram(b)
		read := func() [3]bpfrun.Stats {
			return [3]bpfrun.Stats{bpfrun.Of(b, cover), bpfrun.Of(b, state), bpfrun.Of(b, empty)}
		}
		before := read()
		b.StartTimer()
		dialAndClose(b, tr, addr, true)
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
	})
}

// attachEmptyStateProgram attaches a program that does nothing to inet_sock_set_state as a
// tp_btf program, after podnet's, until the benchmark ends: its run statistics are the floor.
func attachEmptyStateProgram(b *testing.B) *ebpf.Program {
	b.Helper()
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: "inet_sock_set_state", License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = empty.Close() })
	l, err := link.AttachTracing(link.TracingOptions{Program: empty})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return empty
}
