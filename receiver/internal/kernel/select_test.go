package kernel

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// dialPods makes n short connections from client to a listener at addr in server, both ends
// closed, and returns when the server has accepted them all.
func dialPods(t *testing.T, client, server *netnstest.Pod, addr netip.AddrPort, n int) {
	t.Helper()
	clients, servers := connectPodsAt(t, client, server, addr, n)
	for i := range clients {
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
}

// connectPodsAt opens n connections from client to a listener at addr in server (IPv6 too),
// returning both ends; every socket belongs to its pod's namespace, this process holds it, and
// the test's end closes what is still open.
func connectPodsAt(t testing.TB, client, server *netnstest.Pod, addr netip.AddrPort, n int) (clients, servers []net.Conn) {
	t.Helper()
	return connectPodsFrom(t, client, server, addr, n, func(int) *net.TCPAddr { return nil })
}

// connectPodsFrom is connectPodsAt with the i-th connection's client bound to local(i) (nil: the
// kernel picks).
func connectPodsFrom(t testing.TB, client, server *netnstest.Pod, addr netip.AddrPort, n int, local func(i int) *net.TCPAddr) (clients, servers []net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }))
	t.Cleanup(func() { _ = ln.Close() })
	require.NoError(t, client.Do(func() error {
		for i := range n {
			d := net.Dialer{}
			if l := local(i); l != nil {
				d.LocalAddr = l
			}
			c, err := d.Dial("tcp", addr.String())
			if err != nil {
				return err
			}
			clients = append(clients, c)
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			servers = append(servers, s)
		}
		return nil
	}))
	t.Cleanup(func() {
		for _, c := range append(clients, servers...) {
			_ = c.Close()
		}
	})
	return clients, servers
}

// An excluded server port or peer range is decided in the kernel: its connections reserve no
// ring space and take no aggregate key, in either role; the others are reported whole.
func TestExclusionsAreDecidedInTheKernel(t *testing.T) {
	netw := netnstest.NewNetwork(t, 108)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true,
		ExcludePorts: []uint16{7181},
		ExcludePeers: []netip.Prefix{netip.PrefixFrom(serverPod.IPv6, 128)},
	})
	require.NoError(t, err)
	defer tr.Close()
	_, _ = readAll(t, tr, nil)
	before := counters(t, tr)

	dialPods(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7181), 20) // excluded port
	dialPods(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv6, 7182), 20) // excluded peer (client side)
	dialPods(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7183), 10) // kept

	type key struct {
		role uint8
		port uint16
	}
	ring := map[key]int{}
	read := 0
	require.Eventually(t, func() bool {
		events, n := readAll(t, tr, nil)
		read += n
		for _, e := range events {
			if e.NetnsIno != cns && e.NetnsIno != sns {
				continue
			}
			port := e.PeerPort
			if e.Role == roleServer {
				port = e.LocalPort
			}
			ring[key{e.Role, port}]++
		}
		return ring[key{roleClient, 7183}] == 20 && ring[key{roleServer, 7183}] == 20
	}, 5*time.Second, 20*time.Millisecond, "the kept connections' connect, accept and closes: %v", ring)
	time.Sleep(50 * time.Millisecond)
	events, n := readAll(t, tr, nil)
	read += n
	for _, e := range events {
		if e.NetnsIno == cns || e.NetnsIno == sns {
			t.Errorf("late event %+v", e)
		}
	}
	after := counters(t, tr)
	assert.Zero(t, ring[key{roleClient, 7181}]+ring[key{roleServer, 7181}], "excluded server port: no event, either end")
	assert.Zero(t, ring[key{roleClient, 7182}], "excluded peer range: no event at the client (whose peer it is)")
	assert.Equal(t, 2*20, ring[key{roleServer, 7182}], "the server's peers are the clients, not excluded: accept and close")
	// A reservation is always submitted (ring.h), and none failed: one made for an excluded
	// connection would have been read above.
	assert.Zero(t, after.ReserveFailed-before.ReserveFailed)

	agg := map[key]uint64{}
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno == cns || k.NetnsIno == sns {
			agg[key{k.Role, k.ServerPort}] += v.Connections
		}
	}))
	assert.Equal(t, map[key]uint64{{roleClient, 7183}: 10, {roleServer, 7183}: 10, {roleServer, 7182}: 20}, agg,
		"the aggregates count only what is not excluded")
}

// With metrics counted in the kernel, the ring takes only the event types logs keep.
func TestRingTakesOnlyKeptEventTypes(t *testing.T) {
	netw := netnstest.NewNetwork(t, 109)
	pod := netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true, RingTypes: 1 << bpf.PodnetEventTypeEVENT_CLOSE,
	})
	require.NoError(t, err)
	defer tr.Close()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 7191)
	dialPods(t, pod, pod, addr, 25)
	types := map[uint8]int{}
	require.Eventually(t, func() bool {
		events, _ := readAll(t, tr, inNetns(pod.NetnsInode()))
		for _, e := range events {
			types[e.Type]++
		}
		return types[uint8(bpf.PodnetEventTypeEVENT_CLOSE)] >= 50
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, map[uint8]int{uint8(bpf.PodnetEventTypeEVENT_CLOSE): 50}, types, "closes only")
	var opens uint64
	require.NoError(t, tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) {
		if k.NetnsIno == pod.NetnsInode() && k.ServerPort == 7191 {
			opens += v.Connections
		}
	}))
	assert.Equal(t, uint64(50), opens, "the aggregates still count every open")
}

// An IPv6 range keeps IPv6 peers out, never IPv4 ones, though the kernel keys IPv4 as
// IPv4-mapped IPv6, which ::/0 contains ("::/0" left out every connection of the node); an
// IPv4-mapped range is the IPv4 range it maps.
func TestIPv6RangesExcludeNoIPv4Peer(t *testing.T) {
	netw := netnstest.NewNetwork(t, 221)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	cns := clientPod.NetnsInode()
	for _, tc := range []struct {
		name     string
		peers    []netip.Prefix
		v4, v6   bool // kept
		v4p, v6p uint16
	}{
		{"::/0", []netip.Prefix{netip.MustParsePrefix("::/0")}, true, false, 7191, 7192},
		{"::ffff:0:0/96 is 0.0.0.0/0", []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/96")}, false, true, 7193, 7194},
		{"::/0 and 0.0.0.0/0", []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")}, false, false, 7195, 7196},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Open(Options{
				Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 64,
				Events: true, NoLiveReads: true, ExcludePeers: tc.peers,
			})
			require.NoError(t, err)
			defer tr.Close()
			ring := collectRingWhere(t, tr, func(e *bpf.PodnetEvent) bool {
				return e.NetnsIno == cns && e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT)
			})
			dialPods(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, tc.v4p), 3)
			dialPods(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv6, tc.v6p), 3)
			want := map[uint16]int{tc.v4p: map[bool]int{true: 3}[tc.v4], tc.v6p: map[bool]int{true: 3}[tc.v6]}
			connects := map[uint16]int{}
			read := func() {
				for _, e := range ring.take() {
					connects[e.PeerPort]++
				}
			}
			require.Eventually(t, func() bool { read(); return connects[tc.v4p] >= want[tc.v4p] && connects[tc.v6p] >= want[tc.v6p] },
				5*time.Second, 10*time.Millisecond, "the kept connects")
			time.Sleep(200 * time.Millisecond) // excluded ones would have been reported by now: decided at connect
			read()
			assert.Equal(t, want[tc.v4p], connects[tc.v4p], "IPv4 peer kept: %v", tc.v4)
			assert.Equal(t, want[tc.v6p], connects[tc.v6p], "IPv6 peer kept: %v", tc.v6)
		})
	}
}

// Excluded connections are tracked like the rest (their entry says they are left out), so a
// full table pushes them out too; their closes are then no loss to count: an untracked close
// `exclude` leaves out is not counted (found by an independent check: 2,000 excluded
// connections held in a 1,024-entry table counted 3,300 untracked closes).
func TestExcludedClosesAreNeverUntracked(t *testing.T) {
	netw := netnstest.NewNetwork(t, 40)
	pod := netw.AddPod()
	const port, held, table = 7761, 300, 64
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: table, MaxAggregates: 64,
		AggregateInKernel: true, Events: true, ExcludePorts: []uint16{port},
	})
	require.NoError(t, err)
	defer tr.Close()
	before := counters(t, tr).CloseUntracked
	require.NoError(t, pod.Do(func() error {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(pod.IPv4, port).String())
		if err != nil {
			return err
		}
		defer ln.Close()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for range held { // both ends of each open at once: far more than the table holds
			c, s, err := dialAccept(ln)
			if err != nil {
				return err
			}
			conns = append(conns, c, s)
		}
		return nil
	}))
	// Every end closed (the first closers' in TIME_WAIT, which reached CLOSE for podnet).
	require.Eventually(t, func() bool {
		return strings.TrimSpace(pod.Exec("ss", "-Htan", "exclude", "time-wait", "exclude", "listening")) == ""
	}, 5*time.Second, 20*time.Millisecond, "every end closed")
	// Without the check all but ~table of the 2*held ends close untracked. Other packages'
	// tests run beside this one, and their connections opened before this tracer close
	// untracked too: a few, never hundreds.
	untracked := counters(t, tr).CloseUntracked - before
	assert.Less(t, untracked, uint64(held/4), "excluded closes counted untracked")
}
