package kernel

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// What nat_seen (bpf/nat.h) costs a packet that is not a new translated connection — every
// packet crossing the node but a Service connection's first — against the floor of any
// netfilter program: an empty one at the same hook, measured by the same run statistics (which
// read the clock twice per run, so part of both figures is theirs). Pod-to-pod connections
// through a routed node, no Service: ns/run of each program. Root only.
func BenchmarkNetfilterPerPacket(b *testing.B) {
	node := netnstest.NewNode(b, 132)
	client, server := node.AddPod(), node.AddPod()
	target := netip.AddrPortFrom(server.IPv4, 8080)
	server.AcceptAll(b, target, nil)

	enableBPFStats(b)

	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 16, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, NATNetns: node.NetnsPath(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	if err := tr.BackendsErr(); err != nil {
		b.Fatal(err)
	}
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Netfilter, AttachType: ebpf.AttachNetfilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	var l link.Link
	if err := runInNetns(node.NetnsPath(), func() (err error) {
		l, err = link.AttachNetfilter(link.NetfilterOptions{
			Program: empty, ProtocolFamily: link.NetfilterProtoIPv4,
			Hook: link.NetfilterInetPostRouting, Priority: natPriority + 1,
		})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()

	nat := tr.coll.Programs[bpf.PodnetProgNatSeen]
	natBefore, emptyBefore := bpfrun.Of(b, nat), bpfrun.Of(b, empty)
	b.ResetTimer()
	if err := client.Do(func() error {
		for range b.N {
			c, err := net.Dial("tcp", target.String())
			if err != nil {
				return err
			}
			_ = c.Close()
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	natAfter, emptyAfter := bpfrun.Of(b, nat), bpfrun.Of(b, empty)
	b.ReportMetric(bpfrun.PerRun(natBefore, natAfter), "nat_seen-ns/run")
	b.ReportMetric(bpfrun.PerRun(emptyBefore, emptyAfter), "empty-ns/run")
	b.ReportMetric(float64(natAfter.Runs-natBefore.Runs)/float64(b.N), "runs/conn")
}
