package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

func TestCPURingSizeSplitsTheBudget(t *testing.T) {
	for _, c := range []struct {
		budget uint32
		cpus   int
		want   uint32
	}{
		{8 << 20, 2, 4 << 20},
		{8 << 20, 3, 2 << 20}, // 2.67 MiB each: rounded down to a power of two
		{8 << 20, 96, 64 << 10},
		{8 << 20, 256, 64 << 10}, // at least minCPURing: 16 MiB in all
		{4096, 1, 64 << 10},
		{8 << 20, 0, 8 << 20},
	} {
		assert.Equal(t, c.want, cpuRingSize(c.budget, c.cpus), "%d bytes over %d CPUs", c.budget, c.cpus)
	}
}

// recordStride is the ring space one event takes: an 8-byte header, then the event padded to 8.
const recordStride = 8 + (int(unsafe.Sizeof(bpf.PodnetEvent{}))+7)&^7

func openPerCPU(t *testing.T, budget uint32, excludePeers ...netip.Prefix) (*Tracer, *cpuRings) {
	t.Helper()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: budget, PerCPURings: true, MaxTrackedConnections: 65536, MaxAggregates: 16, ExcludePeers: excludePeers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	rings, ok := tr.Events().(*cpuRings)
	require.True(t, ok, "per-CPU rings asked for, got %T", tr.Events())
	return tr, rings
}

// Each CPU's ring holds its share of the budget, at least 64 KiB, as the kernel made it: what
// the start log reports (the budget itself is what the user wrote).
func TestPerCPURingsAreTheirShareOfTheBudget(t *testing.T) {
	cpus, err := ebpf.PossibleCPU()
	require.NoError(t, err)
	for _, budget := range []uint32{1 << 16, 1 << 22} {
		tr, rings := openPerCPU(t, budget)
		for i, r := range rings.rings {
			assert.Equal(t, int(cpuRingSize(budget, cpus)), r.BufferSize(), "ring %d of budget %d", i, budget)
		}
		n, each := tr.Rings()
		assert.Equal(t, cpus, n)
		assert.Equal(t, int(cpuRingSize(budget, cpus)), each)
	}
	shared, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 18, MaxTrackedConnections: 65536, MaxAggregates: 16})
	require.NoError(t, err)
	defer shared.Close()
	n, each := shared.Rings()
	assert.Equal(t, 1, n)
	assert.Equal(t, 1<<18, each)
}

// connectFromCPU makes n connections to addr from a thread of pod pinned to cpu: each
// connect() runs there, so its event is written to that CPU's ring.
func connectFromCPU(t *testing.T, pod *netnstest.Pod, cpu, n int, addr string) {
	t.Helper()
	require.NoError(t, pod.Do(func() error {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil { // this thread only; it dies after Do
			return err
		}
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			_ = c.Close()
		}
		return nil
	}))
}

// Every CPU writes its own ring, and the reader reads them all: each connection made from
// each CPU is there exactly once per end (connect, accept, two closes), and no record is lost.
func TestPerCPURingsCarryEveryEventOfEveryCPU(t *testing.T) {
	netw := netnstest.NewNetwork(t, 176)
	pod := netw.AddPod()
	// The rings are read only at the end, and they would take every TCP event of the machine:
	// other packages' tests, run in parallel by go test, filled 2 MiB per CPU once (hence 16
	// MiB per CPU), and a Kubernetes node's loopback traffic 16 MiB: only the pod's own address
	// is kept, which its connections use.
	tr, rings := openPerCPU(t, 1<<25, netnstest.AllPeersBut(netip.PrefixFrom(pod.IPv4, 32))...)
	cpus := runtime.NumCPU()
	require.Len(t, rings.rings, mustPossibleCPUs(t))
	_, _ = readAll(t, tr, nil)

	var ln net.Listener
	require.NoError(t, pod.Do(func() (err error) { ln, err = net.Listen("tcp", netip.AddrPortFrom(pod.IPv4, 0).String()); return err }))
	var served atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			_ = c.Close()
		}
	}()
	const perCPU = 100
	for cpu := range cpus {
		connectFromCPU(t, pod, cpu, perCPU, ln.Addr().String())
		assert.Positive(t, rings.rings[cpu].AvailableBytes(), "CPU %d's ring holds its connect events", cpu)
	}
	require.Eventually(t, func() bool { return served.Load() == int64(cpus*perCPU) }, 5*time.Second, 10*time.Millisecond)
	_ = ln.Close()
	require.Eventually(t, func() bool { return len(pod.OpenTCPSockets()) == 0 }, 5*time.Second, 10*time.Millisecond,
		"every connection of the pod closed")

	events := collect(collectRingWhere(t, tr, inNetns(pod.NetnsInode())), 4*cpus*perCPU)
	kinds := map[kind]int{}
	for _, e := range events {
		kinds[kind{e.Type, e.Role}]++
	}
	for _, k := range []kind{connected, accepted, clientEnd, serverEnd} {
		assert.Equal(t, cpus*perCPU, kinds[k], "events of kind %+v", k)
	}
	c := counters(t, tr)
	assert.Zero(t, c.ReserveFailed)
}

func mustPossibleCPUs(t *testing.T) int {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	require.NoError(t, err)
	return n
}

// Flush wakes a reader waiting on every ring with a long deadline: it returns what the rings
// hold, then ErrFlushed, then waits again. Close ends a waiting reader with ErrClosed.
func TestPerCPURingsFlushAndClose(t *testing.T) {
	netnstest.RequireRoot(t)
	tr, rings := openPerCPU(t, 1<<20)
	_, _ = readAll(t, tr, nil)

	read := make(chan error, 8)
	go func() {
		var rec ringbuf.Record
		rings.SetDeadline(time.Now().Add(time.Minute))
		for {
			err := rings.ReadInto(&rec)
			read <- err
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // waiting in epoll by now: far below the wakeup mark
	require.NoError(t, rings.Flush())
	for {
		select {
		case err := <-read:
			if err == nil {
				continue // a record some process on the machine made meanwhile
			}
			require.ErrorIs(t, err, ringbuf.ErrFlushed)
		case <-time.After(5 * time.Second):
			t.Fatal("Flush did not wake the reader")
		}
		break
	}
	require.NoError(t, tr.Close())
	for {
		select {
		case err := <-read:
			if err == nil {
				continue
			}
			require.ErrorIs(t, err, ringbuf.ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the waiting reader")
		}
		return
	}
}

// The wakeup mark is a quarter of one CPU's ring: a reader that waits with a long deadline is
// woken whenever a ring is past it, so it keeps up with a load of thousands of events. Without
// wakeups it would read what was there when it last looked, then sleep until the deadline.
func TestPerCPURingsWakeTheReader(t *testing.T) {
	netw := netnstest.NewNetwork(t, 177)
	pod := netw.AddPod()
	tr, rings := openPerCPU(t, 1<<16) // 64 KiB per CPU: mark at 16 KiB, ~120 events
	_, _ = readAll(t, tr, nil)
	var read atomic.Int64 // the pod's events read
	done := make(chan struct{})
	go func() {
		defer close(done)
		var rec ringbuf.Record
		rings.SetDeadline(time.Now().Add(time.Minute))
		for rings.ReadInto(&rec) == nil {
			var e bpf.PodnetEvent
			if binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &e) == nil && e.NetnsIno == pod.NetnsInode() {
				read.Add(1)
			}
		}
	}()
	var l load
	l.run(t, pod, 2, 300*time.Millisecond) // returns once every connection is accepted and closed
	// Below the mark, at most a quarter of each ring can wait for the deadline.
	below := int64(len(rings.rings) * (1 << 16) / 4 / recordStride)
	want := 4*l.ok.Load() - below
	require.Positive(t, want, "the load made too few events to pass the mark")
	// An event is read, lost to a full ring (counted: a reader starved of CPU by a busy machine
	// loses some with rings this small), or waiting; only the waiting ones tell of a missed
	// wakeup, and at most `below` of them may wait.
	lost := func() int64 {
		c, err := tr.Counters()
		if err != nil {
			return 0
		}
		return int64(c.ReserveFailed)
	}
	assert.Eventually(t, func() bool { return read.Load()+lost() >= want }, 5*time.Second, 10*time.Millisecond,
		"the reader kept up only if woken: read %d and lost %d of the pod's %d events", read.Load(), lost(), 4*l.ok.Load())
	require.NoError(t, tr.Close()) // ends the reader
	<-done
}

// A full CPU ring loses events the way the shared ring does: counted, never silent. Nothing
// reads while the load runs, so the 64 KiB rings overflow; afterwards every record counted
// submitted was either read or counted as a reserve failure.
func TestPerCPURingsCountWhatAFullRingLoses(t *testing.T) {
	netw := netnstest.NewNetwork(t, 178)
	pod := netw.AddPod()
	tr, _ := openPerCPU(t, 1<<16)
	var l load
	l.run(t, pod, 2, 300*time.Millisecond) // thousands of events: far more than 2 × 64 KiB holds
	before := counters(t, tr)
	_, read := readAll(t, tr, nil)
	after := counters(t, tr)
	t.Logf("connections %d, submitted %d..%d, read %d, reserve failed %d", l.ok.Load(), before.Submitted, after.Submitted, read, after.ReserveFailed)
	require.Positive(t, after.ReserveFailed, "the rings overflowed")
	assert.GreaterOrEqual(t, uint64(read)+after.ReserveFailed, before.Submitted, "every record counted was read or counted lost")
	assert.LessOrEqual(t, uint64(read)+before.ReserveFailed, after.Submitted)
}
