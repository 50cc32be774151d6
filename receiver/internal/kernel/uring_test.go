package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
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
// reported once too (by the state program, not again at its completion); and so is one that
// found no free local port (EADDRNOTAVAIL: SYN_SENT -> CLOSE inside the kernel's connect, the
// destination port set back to 0 after, as a failure before SYN_SENT leaves it), which the
// state program reports and its completion reported again (found by an independent review).
func TestURingConnectFailuresAreReportedOnce(t *testing.T) {
	inEachHookMode(t, 122, uringConnectFailures)
}

// inEachHookMode runs fn in each hook mode, with events and uring_complete, against one pod of
// a new network (subnet), each mode on its own ports from 7000+subnet; ring has the pod's events.
func inEachHookMode(t *testing.T, subnet byte, fn func(t *testing.T, pod *netnstest.Pod, ring *collector, port uint16)) {
	pod := netnstest.NewNetwork(t, subnet).AddPod()
	for i, mode := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(mode), func(t *testing.T) {
			opts := Options{Hooks: mode, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, Events: true}
			require.True(t, uringProgram(opts), "this kernel (CI's) has what uring_complete reads")
			tr, err := Open(opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tr.Close() }) // after the collector's (cleanups run last first)
			require.Contains(t, tr.coll.Programs, bpf.PodnetProgUringComplete)
			fn(t, pod, collectRing(t, tr, pod.NetnsInode()), 7000+uint16(subnet)+10*uint16(i))
		})
	}
}

func uringConnectFailures(t *testing.T, pod *netnstest.Pod, ring *collector, port uint16) {
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
	exhausted := netip.AddrPortFrom(pod.IPv4, port+2)
	require.Equal(t, -int32(unix.EADDRNOTAVAIL), connectWithNoFreePort(t, pod, exhausted, port+3), "the scenario: no free port")

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
	var noPort []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		collect()
		noPort = noPort[:0]
		for _, e := range byPort[exhausted.Port()] {
			if e.Error != 0 {
				noPort = append(noPort, e)
			}
		}
		return len(noPort) > 0
	}, 5*time.Second, 10*time.Millisecond, "the connect with no free port")
	time.Sleep(100 * time.Millisecond)
	collect()
	noPort = noPort[:0]
	for _, e := range byPort[exhausted.Port()] {
		if e.Error != 0 {
			noPort = append(noPort, e)
		}
	}
	require.Len(t, noPort, 1, "the connect with no free port, once")
	assert.Equal(t, int32(unix.EADDRNOTAVAIL), noPort[0].Error)
	assert.NotZero(t, noPort[0].StartNs, "the state program's report, dated at its SYN_SENT")
}

// connectWithNoFreePort leaves the pod one ephemeral port (firstPort) and holds it connected
// to dst (served in the pod), then io_uring-connects to dst: the kernel finds no free tuple.
// The pod's port range is put back and the held connection closed before it returns.
func connectWithNoFreePort(t *testing.T, pod *netnstest.Pod, dst netip.AddrPort, firstPort uint16) int32 {
	t.Helper()
	pod.DiscardAll(t, dst)
	const rangeKey = "net.ipv4.ip_local_port_range"
	was := strings.Join(strings.Fields(pod.Exec("sysctl", "-n", rangeKey)), " ")
	pod.Exec("sysctl", "-q", "-w", fmt.Sprintf("%s=%d %d", rangeKey, firstPort, firstPort))
	defer pod.Exec("sysctl", "-q", "-w", rangeKey+"="+was)
	var res int32
	require.NoError(t, pod.Do(func() error {
		held, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(held)
		if err := unix.Connect(held, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}); err != nil {
			return err
		}
		res, err = uringConnect(dst)
		return err
	}))
	return res
}

// An io_uring accept (IORING_OP_ACCEPT) makes no accept() system call: its accept record was
// written only at its close, with no process. Its completion names it: one accept record per
// connection, at the accept, with its process, whether the connection was already queued (the
// accept completes inline) or arrived after (it completes from a poll wakeup), and none again
// at its close. An accept into a direct descriptor (a slot of the ring's fixed-file table, its
// result no descriptor of the process) is not taken for the descriptor its result numbers,
// here the client's own socket: it keeps its record for its close. Through a ring with a
// kernel submission thread (SQPOLL), the accept completes on that thread, one of the process's:
// named the same.
func TestURingAcceptsAreNamedAtAccept(t *testing.T) {
	inEachHookMode(t, 136, uringAccepts)
}

func uringAccepts(t *testing.T, pod *netnstest.Pod, ring *collector, port uint16) {
	// Sockets belong to the namespace they are made in: made in the pod, used from here.
	var ln int
	clients := make([]int, 4)
	require.NoError(t, pod.Do(func() (err error) {
		if ln, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err != nil {
			return err
		}
		if err = unix.Bind(ln, &unix.SockaddrInet4{Port: int(port), Addr: pod.IPv4.As4()}); err != nil {
			return err
		}
		for i := range clients {
			if clients[i], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err != nil {
				return err
			}
		}
		return unix.Listen(ln, 8)
	}))
	fds := map[int]bool{ln: true}
	for _, c := range clients {
		fds[c] = true
	}
	closeAll := func() { // each once: a number closed twice may be another's by then
		for fd := range fds {
			_ = unix.Close(fd)
			delete(fds, fd)
		}
	}
	defer closeAll()
	dial := func(c int) error { return unix.Connect(c, &unix.SockaddrInet4{Port: int(port), Addr: pod.IPv4.As4()}) }
	r, err := newURing()
	require.NoError(t, err)
	defer r.close()
	accept := func(r *uring, fileIndex uint32) (int32, error) {
		flags := uint32(unix.SOCK_CLOEXEC)
		if fileIndex != 0 {
			flags = 0 // a direct descriptor takes no flag of a descriptor's
		}
		return r.do(func(sqe []byte) {
			sqe[0] = 13                                                                      // IORING_OP_ACCEPT
			*(*int32)(unsafe.Pointer(&sqe[4])) = int32(ln)                                   // fd
			*(*uint32)(unsafe.Pointer(&sqe[44])) = fileIndex                                 // file_index: 0, a descriptor
			*(*uint32)(unsafe.Pointer(&sqe[28])) = flags                                     // accept_flags
			*(*uint64)(unsafe.Pointer(&sqe[16])), *(*uint64)(unsafe.Pointer(&sqe[8])) = 0, 0 // no address asked
		})
	}

	// Queued before the accept is submitted: completed inline.
	require.NoError(t, dial(clients[0]))
	before := boottime(t)
	queued, err := accept(r, 0)
	require.NoError(t, err)
	require.Positive(t, queued, "the scenario: an accepted descriptor")
	fds[int(queued)] = true

	// Arriving after: the accept waits on the listener and completes from its wakeup.
	dialed := make(chan error, 1)
	go func() { time.Sleep(100 * time.Millisecond); dialed <- dial(clients[1]) }()
	later, err := accept(r, 0)
	require.NoError(t, err)
	require.NoError(t, <-dialed)
	require.Positive(t, later)
	fds[int(later)] = true

	// Through an SQPOLL ring: completed on its submission thread.
	sq, err := newURingWith(sqPoll)
	require.NoError(t, err)
	defer sq.close()
	require.NoError(t, dial(clients[3]))
	polled, err := accept(sq, 0)
	require.NoError(t, err)
	require.Positive(t, polled)
	fds[int(polled)] = true
	after := boottime(t)

	// Into a direct descriptor: the table's lowest free slot is the one numbered as the third
	// client's descriptor (the slots below hold the listener), so a result taken for a
	// descriptor would name that client socket as accepted.
	slots := make([]int32, clients[2]+1)
	for i := range slots {
		slots[i] = int32(ln)
	}
	slots[clients[2]] = -1  // sparse: free
	const registerFiles = 2 // IORING_REGISTER_FILES
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, r.fd, registerFiles, uintptr(unsafe.Pointer(&slots[0])), uintptr(len(slots)), 0, 0)
	require.Zero(t, errno, "registering the fixed-file table")
	require.NoError(t, dial(clients[2]))
	slot, err := accept(r, ^uint32(0)) // IORING_FILE_INDEX_ALLOC
	require.NoError(t, err)
	require.Equal(t, int32(clients[2]), slot, "the scenario: the slot numbered as the client's descriptor")

	localPort := func(fd int) uint16 {
		sa, err := unix.Getsockname(fd)
		require.NoError(t, err)
		return uint16(sa.(*unix.SockaddrInet4).Port)
	}
	byClient := map[uint16]int{localPort(clients[0]): 0, localPort(clients[1]): 1, localPort(clients[2]): 2, localPort(clients[3]): 3}
	accepts := func(events []bpf.PodnetEvent) map[int][]bpf.PodnetEvent {
		out := map[int][]bpf.PodnetEvent{}
		for _, e := range events {
			if e.Type != uint8(bpf.PodnetEventTypeEVENT_ACCEPT) {
				continue
			}
			which, ok := byClient[e.PeerPort]
			if e.LocalPort != port || !ok {
				which = -1 // anything else: the client socket taken for accepted, say
			}
			out[which] = append(out[which], e)
		}
		return out
	}
	var open []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		open = append(open, ring.take()...)
		got := accepts(open)
		return len(got[0]) > 0 && len(got[1]) > 0 && len(got[3]) > 0
	}, 5*time.Second, 10*time.Millisecond, "the three accepts into descriptors reported while open")
	time.Sleep(100 * time.Millisecond) // a wrong one, if any, would be in by now
	open = append(open, ring.take()...)
	got := accepts(open)
	for _, which := range []int{0, 1, 3} {
		require.Len(t, got[which], 1, "accept %d once", which)
		e := got[which][0]
		assert.Equal(t, uint32(os.Getpid()), e.Pid, "accept %d names the process that submitted it", which)
		assert.NotZero(t, e.Comm[0], "and its name")
		assert.True(t, e.TimestampNs >= before && e.TimestampNs <= after, "accept %d dated at its completion", which)
	}
	assert.Empty(t, got[2], "the direct accept: not reported as another descriptor's, its own kept for its close")
	assert.Empty(t, got[-1], "nothing else reported accepted")

	// Closed: the named accepts are not reported again; the direct one is, at its close.
	closeAll()
	r.close() // its fixed-file table held the direct descriptor
	closed := accepts(ring.settled(t, pod))
	for _, which := range []int{0, 1, 3} {
		assert.Empty(t, closed[which], "accept %d: not again at its close", which)
	}
	require.Len(t, closed[2], 1, "the direct accept, reported at its close")
	assert.Zero(t, closed[2][0].Pid, "with no process: no descriptor named it")
	assert.Empty(t, closed[-1])
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

func newURing() (*uring, error) { return newURingWith(0) }

// sqPoll is IORING_SETUP_SQPOLL: a kernel thread of the process takes the submissions.
const sqPoll = 1 << 1

// newURingWith makes the ring with setup flags.
func newURingWith(flags uint32) (*uring, error) {
	r := &uring{p: uringParams{Flags: flags}}
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

// do submits one request that fill describes and waits for its completion's result. The wait
// can return before the completion (a signal to this thread, or an SQPOLL ring's thread not yet
// done): it is made again, up to a bound.
func (r *uring) do(fill func(sqe []byte)) (int32, error) {
	sqe := r.sqes[:64]
	clear(sqe)
	fill(sqe)
	*(*uint64)(unsafe.Pointer(&sqe[32])) = 1 // user_data
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.rings[off])) }
	tail := atomic.LoadUint32(u32(r.p.SqOff.Tail))
	*u32(r.p.SqOff.Array + (tail&*u32(r.p.SqOff.RingMask))*4) = 0
	atomic.StoreUint32(u32(r.p.SqOff.Tail), tail+1)
	enter := uintptr(1) // IORING_ENTER_GETEVENTS
	if r.p.Flags&sqPoll != 0 {
		enter |= 2 // IORING_ENTER_SQ_WAKEUP: the thread may be asleep (idle)
	}
	head := atomic.LoadUint32(u32(r.p.CqOff.Head))
	for submit, tries := uintptr(1), 0; head == atomic.LoadUint32(u32(r.p.CqOff.Tail)); submit, tries = 0, tries+1 {
		if tries == 1000 {
			return 0, unix.ETIMEDOUT
		}
		if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, r.fd, submit, 1, enter, 0, 0); errno != 0 && errno != unix.EINTR {
			return 0, errno
		}
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
