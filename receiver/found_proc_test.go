package podnetreceiver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/procfound"
)

// A /proc find is reported as the kernel scan's would be: a found connection, role guessed.
func TestFoundEventFromProc(t *testing.T) {
	c := procfound.Conn{
		NetnsIno: 4026532002, Local: netip.MustParseAddrPort("10.1.0.9:8080"), Peer: netip.MustParseAddrPort("10.1.0.5:40000"),
		Role: procfound.Server, RoleGuessed: true, PID: 42, Comm: "nginx",
	}
	e := foundEvent(c, 7, true, false)
	assert.Equal(t, event.Found, e.Type)
	assert.Equal(t, event.Server, e.Role)
	assert.True(t, e.Found)
	assert.True(t, e.RoleGuessed)
	assert.Equal(t, c.Local, e.Local)
	assert.Equal(t, c.Peer, e.Peer)
	assert.Equal(t, uint32(42), e.PID)
	assert.Equal(t, "nginx", string(e.Comm[:5]))
	off := foundEvent(c, 7, false, false) // logs.process_attributes: false
	assert.Zero(t, off.PID)
	assert.Zero(t, off.Comm[0])
	assert.Equal(t, uint64(7), e.Time)
	assert.Equal(t, event.Client, foundEvent(procfound.Conn{Role: procfound.Client}, 0, true, false).Role)
}

// Where the kernel refuses the BPF iterators, the connections open before Start are still
// reported, found in /proc: real connections between two pods, a receiver whose kernel side
// says the iterators did not load.
func TestStartWithoutIteratorsFindsConnectionsFromProc(t *testing.T) {
	netw := netnstest.NewNetwork(t, 113)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	const n = 50
	// /proc shows a namespace's sockets through a process living in it, as a pod's always does
	// (its pause process); this test's sockets are held from outside, so each pod gets one.
	for _, p := range []*netnstest.Pod{clientPod, serverPod} {
		sleeper := p.Command("sleep", "60")
		require.NoError(t, sleeper.Start())
		t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
		p.WaitInside(sleeper.Process.Pid) // Start's /proc scan runs once: the sleeper must be in
	}
	addr := net.JoinHostPort(serverPod.IPv4.String(), strconv.Itoa(7113))
	var ln net.Listener
	require.NoError(t, serverPod.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }))
	defer ln.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	require.NoError(t, clientPod.Do(func() error {
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			conns = append(conns, c)
			a, err := ln.Accept()
			if err != nil {
				return err
			}
			conns = append(conns, a)
		}
		return nil
	}))

	logs := new(consumertest.LogsSink)
	f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(), logs, nil)
	f.kernel.iterErr = errors.New("the kernel refused the BPF iterators")
	f.start(t)
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	require.Eventually(t, func() bool { return len(records(logs.AllLogs(), cns, sns)) >= 2*n }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, f.Shutdown(context.Background()))
	f.requireStopped(t)

	assert.Zero(t, f.kernel.scanCount(), "the kernel scan is not run")
	roles := map[string]int{}
	for _, r := range records(logs.AllLogs(), cns, sns) {
		assert.Equal(t, "podnet.tcp.connection.found", r.name)
		assert.Equal(t, true, r.attrs["podnet.connection.role.guessed"])
		assert.Equal(t, int64(os.Getpid()), r.attrs["process.pid"])
		role := r.attrs["podnet.connection.role"].(string)
		roles[role]++
		want := map[string]int64{"client": int64(cns), "server": int64(sns)}[role]
		assert.Equal(t, want, r.netns, "%s end in its pod's namespace", role)
	}
	assert.Equal(t, map[string]int{"client": n, "server": n}, roles)
}

// A /proc find's record says nothing of its bytes (nobody read them: 0 would be a number), its
// Resource names no cgroup (0 is none), and with logs sampling on it says 1 in 1, as the kernel
// scan's finds do (found by an independent review: bytes 0, podnet.cgroup.id 0, no rate).
func TestFoundFromProcRecordLeavesOutWhatIsUnknown(t *testing.T) {
	cfg := NewDefaultConfig()
	c := procfound.Conn{
		NetnsIno: 4026532002, Local: netip.MustParseAddrPort("10.1.0.9:8080"), Peer: netip.MustParseAddrPort("10.1.0.5:40000"),
		Role: procfound.Server, RoleGuessed: true,
	}
	conv := newLogsConverter(cfg.Events, "test")
	for _, sampled := range []bool{false, true} {
		events := enrichAll(fixtureResources(cfg), []event.Event{foundEvent(c, t0, false, sampled)})
		ld, n := conv.convert(events, pcommon.Timestamp(t0))
		require.Equal(t, 1, n)
		rl := ld.ResourceLogs().At(0)
		lr := rl.ScopeLogs().At(0).LogRecords().At(0)
		a := lr.Attributes().AsRaw()
		assert.NotContains(t, a, "podnet.tcp.bytes_sent")
		assert.NotContains(t, a, "podnet.tcp.bytes_received")
		assert.Equal(t, lr.Attributes().Len(), attributeCount(&events[0]))
		_, cgroup := rl.Resource().Attributes().Get("podnet.cgroup.id")
		assert.False(t, cgroup, "no cgroup id of 0 on the Resource")
		if sampled {
			assert.Equal(t, int64(1), a["podnet.sampling.one_in"], "kept as every find is")
		} else {
			assert.NotContains(t, a, "podnet.sampling.one_in")
		}
	}
}
