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
	"github.com/podnet/podnet/internal/netnstest"
)

// An io_uring connect (IORING_OP_CONNECT) makes no connect() system call: one that fails before
// its SYN (no route) was reported nowhere (found by an independent check). It is reported once,
// with its errno, the peer it was sent to and its process; one refused after its SYN is
// reported once too (by the state program, not again at its completion).
func TestURingConnectFailuresAreReportedOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 122)
	pod := netw.AddPod()
	tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, Events: true})
	require.NoError(t, err)
	defer tr.Close()
	if !uringProgram(Options{Events: true}) {
		t.Fatal("this kernel lacks what uring_complete reads (features.go uringConnect): CI's kernel has it")
	}
	ring := collectRing(t, tr, pod.NetnsInode())

	// No route from the pod to 10.214.0.0/16: the connect fails at its route lookup, and no
	// packet leaves the namespace. The pod's own address, on a closed port: refused.
	unrouted := netip.AddrPortFrom(netip.MustParseAddr("10.214.122.1"), 7122)
	closed := netip.AddrPortFrom(pod.IPv4, 7123)
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
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
				byPort[e.PeerPort] = append(byPort[e.PeerPort], e)
			}
		}
		return len(byPort[unrouted.Port()]) > 0 && len(byPort[closed.Port()]) > 0
	}, 5*time.Second, 10*time.Millisecond, "both failed connects")
	time.Sleep(100 * time.Millisecond) // a second report, if any, would be in by now
	for _, e := range ring.take() {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) {
			byPort[e.PeerPort] = append(byPort[e.PeerPort], e)
		}
	}
	require.Len(t, byPort[unrouted.Port()], 1, "the unrouted connect, once")
	e := byPort[unrouted.Port()][0]
	assert.Equal(t, int32(unix.ENETUNREACH), e.Error)
	assert.Equal(t, unrouted.Addr().AsSlice(), e.PeerAddr[:4], "the peer it was sent to")
	assert.Equal(t, uint32(os.Getpid()), e.Pid, "the process that submitted it")
	require.Len(t, byPort[closed.Port()], 1, "the refused connect, once")
	assert.Equal(t, int32(unix.ECONNREFUSED), byPort[closed.Port()][0].Error)
}

// uringConnect connects a new TCP socket to addr (IPv4) through a one-entry io_uring and
// returns the completion's result (0 or -errno). Raw system calls: no io_uring library here.
func uringConnect(addr netip.AddrPort) (int32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var p uringParams
	ring, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return 0, errno
	}
	defer unix.Close(int(ring))
	if p.Features&1 == 0 { // IORING_FEAT_SINGLE_MMAP (5.4+)
		return 0, unix.ENOTSUP
	}
	size := max(p.SqOff.Array+p.SqEntries*4, p.CqOff.Cqes+p.CqEntries*16)
	rings, err := unix.Mmap(int(ring), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(rings)
	sqes, err := unix.Mmap(int(ring), 0x10000000, int(p.SqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE) // IORING_OFF_SQES
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(sqes)

	sa := make([]byte, unix.SizeofSockaddrInet4) // struct sockaddr_in, as the kernel reads it
	*(*uint16)(unsafe.Pointer(&sa[0])) = unix.AF_INET
	sa[2], sa[3] = byte(addr.Port()>>8), byte(addr.Port())
	copy(sa[4:8], addr.Addr().AsSlice())
	sqe := sqes[:64]
	clear(sqe)
	sqe[0] = 16                                                                    // IORING_OP_CONNECT
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)                                 // fd
	*(*uint64)(unsafe.Pointer(&sqe[8])) = uint64(len(sa))                          // off: the address's length
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&sa[0]))) // addr
	*(*uint64)(unsafe.Pointer(&sqe[32])) = 1                                       // user_data
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&rings[off])) }
	tail := atomic.LoadUint32(u32(p.SqOff.Tail))
	*u32(p.SqOff.Array + (tail&*u32(p.SqOff.RingMask))*4) = 0
	atomic.StoreUint32(u32(p.SqOff.Tail), tail+1)
	const getEvents = 1 // IORING_ENTER_GETEVENTS
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, ring, 1, 1, getEvents, 0, 0); errno != 0 {
		return 0, errno
	}
	runtime.KeepAlive(sa)
	head := atomic.LoadUint32(u32(p.CqOff.Head))
	if head == atomic.LoadUint32(u32(p.CqOff.Tail)) {
		return 0, unix.EAGAIN
	}
	cqe := p.CqOff.Cqes + (head&*u32(p.CqOff.RingMask))*16
	res := *(*int32)(unsafe.Pointer(&rings[cqe+8]))
	atomic.StoreUint32(u32(p.CqOff.Head), head+1)
	return res, nil
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
