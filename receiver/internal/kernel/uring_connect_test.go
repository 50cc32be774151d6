package kernel

import (
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// An io_uring connect (IORING_OP_CONNECT) makes no connect() system call: one that fails before
// its SYN (no route) was reported nowhere (found by an independent check). It is reported once,
// with its errno, the peer it was sent to and its process; one refused after its SYN is
// reported once too (by the state program, not again at its completion).
func TestURingConnectFailuresAreReportedOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 122)
	pod := netw.AddPod()
	for i, mode := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(mode), func(t *testing.T) { uringConnectFailures(t, pod, mode, uint16(7122+10*i)) })
	}
}

func uringConnectFailures(t *testing.T, pod *netnstest.Pod, mode HookMode, port uint16) {
	opts := Options{Hooks: mode, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, Events: true}
	require.True(t, uringProgram(opts), "this kernel (CI's) has what uring_complete reads")
	tr, err := Open(opts)
	require.NoError(t, err)
	defer tr.Close()
	require.Contains(t, tr.coll.Programs, bpf.PodnetProgUringComplete)
	ring := collectRing(t, tr, pod.NetnsInode())

	// No route from the pod to 10.214.0.0/16: the connect fails at its route lookup, and no
	// packet leaves the namespace. The pod's own address, on a closed port: refused.
	unrouted := netip.AddrPortFrom(netip.MustParseAddr("10.214.122.1"), port)
	closed := netip.AddrPortFrom(pod.IPv4, port+1)
	var unroutedRes, closedRes int32
	require.NoError(t, pod.Do(func() (err error) {
		if unroutedRes, err = uringConnect(unrouted); err != nil {
			return err
		}
		closedRes, err = uringConnect(closed)
		return err
	}))
	require.Equal(t, -int32(unix.ENETUNREACH), unroutedRes, "the scenario: no route")
	require.Equal(t, -int32(unix.ECONNREFUSED), closedRes, "the scenario: refused")

	byPort := map[uint16][]bpf.PodnetEvent{}
	collect := func() {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
				byPort[e.PeerPort] = append(byPort[e.PeerPort], e)
			}
		}
	}
	require.Eventually(t, func() bool {
		collect()
		return len(byPort[unrouted.Port()]) > 0 && len(byPort[closed.Port()]) > 0
	}, 5*time.Second, 10*time.Millisecond, "both failed connects")
	time.Sleep(100 * time.Millisecond) // a second report, if any, would be in by now
	collect()
	require.Len(t, byPort[unrouted.Port()], 1, "the unrouted connect, once")
	e := byPort[unrouted.Port()][0]
	assert.Equal(t, int32(unix.ENETUNREACH), e.Error)
	assert.Equal(t, unrouted.Addr().AsSlice(), e.PeerAddr[:4], "the peer it was sent to")
	assert.Equal(t, uint32(os.Getpid()), e.Pid, "the process that submitted it")
	require.Len(t, byPort[closed.Port()], 1, "the refused connect, once")
	assert.Equal(t, int32(unix.ECONNREFUSED), byPort[closed.Port()][0].Error)
}

// uringConnect connects a new TCP socket to addr (IPv4) through a one-entry io_uring and
// returns the completion's result (0 or -errno).
func uringConnect(addr netip.AddrPort) (int32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	r, err := newURing()
	if err != nil {
		return 0, err
	}
	defer r.close()
	sa := make([]byte, unix.SizeofSockaddrInet4) // struct sockaddr_in, as the kernel reads it
	*(*uint16)(unsafe.Pointer(&sa[0])) = unix.AF_INET
	sa[2], sa[3] = byte(addr.Port()>>8), byte(addr.Port())
	copy(sa[4:8], addr.Addr().AsSlice())
	res, err := r.do(func(sqe []byte) {
		sqe[0] = 16                                                                    // IORING_OP_CONNECT
		*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)                                 // fd
		*(*uint64)(unsafe.Pointer(&sqe[8])) = uint64(len(sa))                          // off: the address's length
		*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&sa[0]))) // addr
	})
	runtime.KeepAlive(sa)
	return res, err
}

// uring is a one-entry io_uring, through raw system calls (no io_uring library here).
type uring struct {
	fd          uintptr
	p           uringParams
	rings, sqes []byte
}

func newURing() (*uring, error) {
	r := &uring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		return nil, errno
	}
	r.fd = fd
	if r.p.Features&1 == 0 { // IORING_FEAT_SINGLE_MMAP (5.4+)
		r.close()
		return nil, unix.ENOTSUP
	}
	size := max(r.p.SqOff.Array+r.p.SqEntries*4, r.p.CqOff.Cqes+r.p.CqEntries*16)
	var err error
	if r.rings, err = unix.Mmap(int(fd), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, err
	}
	if r.sqes, err = unix.Mmap(int(fd), 0x10000000, int(r.p.SqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil { // IORING_OFF_SQES
		r.close()
		return nil, err
	}
	return r, nil
}

// close releases the ring; again, it does nothing.
func (r *uring) close() {
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
		r.sqes = nil
	}
	if r.rings != nil {
		_ = unix.Munmap(r.rings)
		r.rings = nil
	}
	if r.fd != closedURing {
		_ = unix.Close(int(r.fd))
		r.fd = closedURing
	}
}

const closedURing = ^uintptr(0)

// do submits one request that fill describes and waits for its completion's result.
func (r *uring) do(fill func(sqe []byte)) (int32, error) {
	sqe := r.sqes[:64]
	clear(sqe)
	fill(sqe)
	*(*uint64)(unsafe.Pointer(&sqe[32])) = 1 // user_data
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.rings[off])) }
	tail := atomic.LoadUint32(u32(r.p.SqOff.Tail))
	*u32(r.p.SqOff.Array + (tail&*u32(r.p.SqOff.RingMask))*4) = 0
	atomic.StoreUint32(u32(r.p.SqOff.Tail), tail+1)
	const getEvents = 1 // IORING_ENTER_GETEVENTS
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, r.fd, 1, 1, getEvents, 0, 0); errno != 0 {
		return 0, errno
	}
	head := atomic.LoadUint32(u32(r.p.CqOff.Head))
	if head == atomic.LoadUint32(u32(r.p.CqOff.Tail)) {
		return 0, unix.EAGAIN
	}
	cqe := r.p.CqOff.Cqes + (head&*u32(r.p.CqOff.RingMask))*16
	res := *(*int32)(unsafe.Pointer(&r.rings[cqe+8]))
	atomic.StoreUint32(u32(r.p.CqOff.Head), head+1)
	return res, nil
}

// BenchmarkURingCompletion is what uring_complete costs every io_uring completion on the node
// (it runs for all of them, reads the opcode of those with a result that may be a descriptor, a
// no-op's 0 among them, and more only for accepts and failed connects): io_uring no-op
// requests with podnet (events) in each hook mode, without the program (the baseline: the
// syscall hooks alone slow every io_uring_enter) and with it. ns/op is a whole request's round
// trip; ns-in-bpf/op the program's own time from the kernel's run statistics (on in all four,
// for a like baseline).
func BenchmarkURingCompletion(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, mode := range []HookMode{HooksTPBTF, HooksTracepoint} {
		for _, noURing := range []bool{true, false} {
			b.Run(string(mode)+map[bool]string{true: "/without-it", false: "/with-it"}[noURing], func(b *testing.B) {
				benchURing(b, Options{Hooks: mode, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, Events: true, noURing: noURing})
			})
		}
	}
}

func benchURing(b *testing.B, opts Options) {
	enableBPFStats(b)
	tr, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	p := tr.coll.Programs[bpf.PodnetProgUringComplete]
	if (p == nil) != opts.noURing {
		b.Fatal("uring_complete loaded where it should not be, or not where it should")
	}
	r, err := newURing()
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	var before bpfrun.Stats
	if p != nil {
		before = bpfrun.Of(b, p)
	}
	b.ResetTimer()
	for range b.N {
		if res, err := r.do(func([]byte) {}); err != nil || res != 0 { // IORING_OP_NOP is 0
			b.Fatal(res, err)
		}
	}
	b.StopTimer()
	if p != nil {
		after := bpfrun.Of(b, p)
		b.ReportMetric(float64(after.NS-before.NS)/float64(b.N), "ns-in-bpf/op")
		b.ReportMetric(float64(after.Runs-before.Runs)/float64(b.N), "runs/op")
	}
}

// uringParams is struct io_uring_params (linux/io_uring.h).
type uringParams struct {
	SqEntries, CqEntries, Flags, SqThreadCPU, SqThreadIdle, Features, WqFd uint32
	Resv                                                                   [3]uint32
	SqOff                                                                  struct {
		Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
		UserAddr                                                        uint64
	}
	CqOff struct {
		Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
		UserAddr                                                        uint64
	}
}
