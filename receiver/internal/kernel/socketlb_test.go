package kernel

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// socketLB attaches to cgroup what Cilium's socket-level load balancing does: a cgroup/connect4
// program that rewrites connect()'s destination from vip to backend before TCP sees it.
func socketLB(t *testing.T, cgroup string, vip, backend netip.AddrPort) {
	t.Helper()
	// bpf_sock_addr: user_ip4 at 4 and user_port at 24, both network order in a u32.
	word := func(a netip.Addr) int32 { return int32(binary.NativeEndian.Uint32(a.AsSlice())) }
	port := func(p uint16) int32 {
		return int32(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, p)))
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       ebpf.CGroupSockAddr,
		AttachType: ebpf.AttachCGroupInet4Connect,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 4, asm.Word),
			asm.JNE.Imm(asm.R2, word(vip.Addr()), "out"),
			asm.LoadMem(asm.R2, asm.R1, 24, asm.Word),
			asm.JNE.Imm(asm.R2, port(vip.Port()), "out"),
			asm.Mov.Imm32(asm.R2, word(backend.Addr())),
			asm.StoreMem(asm.R1, 4, asm.R2, asm.Word),
			asm.Mov.Imm32(asm.R2, port(backend.Port())),
			asm.StoreMem(asm.R1, 24, asm.R2, asm.Word),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
			asm.Return(),
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = prog.Close() })
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: ebpf.AttachCGroupInet4Connect, Program: prog})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
}

// Where socket-level load balancing replaces kube-proxy, the socket holds the backend from the
// start and no NAT happens; with SocketLB the client's events carry what connect() was asked
// for (the Service) beside it. Without SocketLB nothing is read, and nothing is marked.
func TestSocketLevelLoadBalancingKeepsTheDialledService(t *testing.T) {
	node := netnstest.NewNode(t, 129)
	client, backend := node.AddPod(), node.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	client.Cgroup = cg.Container(netnstest.NewUID(), netnstest.NewContainerID())
	vip, target := netip.MustParseAddrPort("10.96.0.40:80"), netip.AddrPortFrom(backend.IPv4, 8080)
	socketLB(t, client.Cgroup, vip, target)
	ns := client.NetnsInode()

	for _, on := range []bool{true, false} {
		// With events and in-kernel aggregates split by backend together: the combination an
		// independent check found refused by the verifier (tp_btf: its stack) and keyed wrong.
		tr, err := Open(Options{
			Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 16, SocketLB: on,
			Events: true, AggregateInKernel: true, NATNetns: "/proc/self/ns/net", BackendInMetrics: true,
		})
		require.NoError(t, err)
		if on {
			require.Equal(t, HooksTPBTF, tr.Mode(), "tp_btf loads with socket LB, events and aggregates")
		}
		c := collectRing(t, tr, ns)
		const n = 3
		srv := backend.StartServer(t, target.String(), n)
		for range n {
			_, res := client.Dial(t, vip.String(), "hi")
			require.Empty(t, res, "the connect reached the backend")
		}
		srv.Wait(t)
		// The unspecified address, which the kernel sends to loopback: not a balancer's choice.
		local := client.StartServer(t, "127.0.0.1:8081", 1)
		_, res := client.Dial(t, "0.0.0.0:8081", "hi")
		require.Empty(t, res)
		local.Wait(t)
		events := c.settled(t, client)
		c.close()
		var keys []bpf.PodnetAggKey
		require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, _ *bpf.PodnetAggValue) {
			if k.NetnsIno == ns && k.Role == uint8(bpf.PodnetRoleROLE_CLIENT) {
				keys = append(keys, *k)
			}
		}))
		require.NoError(t, tr.Close())

		dialledKeys := 0
		for _, k := range keys {
			peer := netip.AddrFrom16(k.PeerAddr)
			if k.Family == 2 {
				peer = netip.AddrFrom4([4]byte(k.PeerAddr[:4]))
			}
			if k.Flags&uint8(bpf.PodnetAggKeyFlagAGG_KEY_DIALLED) != 0 {
				dialledKeys++
				assert.Equal(t, target.Addr(), peer, "the key's peer is the backend")
				assert.Equal(t, vip.Addr(), netip.AddrFrom16(k.BackendAddr).Unmap(), "its backend_addr what was dialled")
				assert.NotZero(t, k.Flags&uint8(bpf.PodnetAggKeyFlagAGG_KEY_BACKEND), "split by it")
			}
		}
		if on {
			assert.Equal(t, 1, dialledKeys, "the connects to the Service in one key, marked dialled")
		} else {
			assert.Zero(t, dialledKeys)
		}

		var loopback int
		for i := range events {
			e := &events[i]
			if e.PeerPort == 8081 {
				loopback++
				assert.Zero(t, e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_DIALLED), "0.0.0.0 dialled: not translated")
				assert.Zero(t, e.BackendPort)
			}
		}
		assert.Equal(t, 2, loopback, "the loopback connect and close")
		events = slices.DeleteFunc(events, func(e bpf.PodnetEvent) bool { return e.PeerPort == 8081 || e.LocalPort == 8081 })

		var connects, closes int
		for i := range events {
			e := &events[i]
			_, peer := ends(e)
			require.Equal(t, target, peer, "the socket's peer is the backend")
			dialled := e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_DIALLED) != 0
			assert.Equal(t, on, dialled, "socket_lb %v", on)
			if on {
				assert.Equal(t, vip, backendOf(e), "backend_* hold what was dialled")
			} else {
				assert.Zero(t, e.BackendPort)
			}
			switch e.Type {
			case uint8(bpf.PodnetEventTypeEVENT_CONNECT):
				connects++
			case uint8(bpf.PodnetEventTypeEVENT_CLOSE):
				closes++
			}
		}
		assert.Equal(t, n, connects, "socket_lb %v", on)
		assert.Equal(t, n, closes, "socket_lb %v", on)
	}
}
