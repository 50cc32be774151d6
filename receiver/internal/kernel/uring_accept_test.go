package kernel

import (
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// An io_uring accept (IORING_OP_ACCEPT) makes no accept() system call: its accept record was
// written only at its close, with no process. Its completion names it: one accept record per
// connection, at the accept, with its process, whether the connection was already queued (the
// accept completes inline) or arrived after (it completes from a poll wakeup), and none again
// at its close. An accept into a direct descriptor (a slot of the ring's fixed-file table, its
// result no descriptor of the process) is not taken for the descriptor its result numbers,
// here the client's own socket: it keeps its record for its close.
func TestURingAcceptsAreNamedAtAccept(t *testing.T) {
	netw := netnstest.NewNetwork(t, 136)
	pod := netw.AddPod()
	for i, mode := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(mode), func(t *testing.T) { uringAccepts(t, pod, mode, uint16(7136+i)) })
	}
}

func uringAccepts(t *testing.T, pod *netnstest.Pod, mode HookMode, port uint16) {
	opts := Options{Hooks: mode, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, Events: true}
	require.True(t, uringProgram(opts), "this kernel (CI's) has what uring_complete reads")
	tr, err := Open(opts)
	require.NoError(t, err)
	defer tr.Close()
	ring := collectRing(t, tr, pod.NetnsInode())

	// Sockets belong to the namespace they are made in: made in the pod, used from here.
	var ln int
	clients := make([]int, 3)
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
	accept := func(fileIndex uint32) (int32, error) {
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
	queued, err := accept(0)
	require.NoError(t, err)
	require.Greater(t, queued, int32(0), "the scenario: an accepted descriptor")
	fds[int(queued)] = true

	// Arriving after: the accept waits on the listener and completes from its wakeup.
	dialed := make(chan error, 1)
	go func() { time.Sleep(100 * time.Millisecond); dialed <- dial(clients[1]) }()
	later, err := accept(0)
	require.NoError(t, err)
	require.NoError(t, <-dialed)
	require.Greater(t, later, int32(0))
	fds[int(later)] = true
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
	slot, err := accept(^uint32(0)) // IORING_FILE_INDEX_ALLOC
	require.NoError(t, err)
	require.Equal(t, int32(clients[2]), slot, "the scenario: the slot numbered as the client's descriptor")

	localPort := func(fd int) uint16 {
		sa, err := unix.Getsockname(fd)
		require.NoError(t, err)
		return uint16(sa.(*unix.SockaddrInet4).Port)
	}
	byClient := map[uint16]int{localPort(clients[0]): 0, localPort(clients[1]): 1, localPort(clients[2]): 2}
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
		return len(got[0]) > 0 && len(got[1]) > 0
	}, 5*time.Second, 10*time.Millisecond, "both accepts reported while open")
	time.Sleep(100 * time.Millisecond) // a wrong one, if any, would be in by now
	open = append(open, ring.take()...)
	got := accepts(open)
	for which := range 2 {
		require.Len(t, got[which], 1, "accept %d once", which)
		e := got[which][0]
		assert.Equal(t, uint32(os.Getpid()), e.Pid, "accept %d names the process that submitted it", which)
		assert.NotZero(t, e.Comm[0], "and its name")
		assert.True(t, e.TimestampNs >= before && e.TimestampNs <= after, "accept %d dated at its completion", which)
	}
	assert.Empty(t, got[2], "the direct accept: not reported as another descriptor's, its own kept for its close")
	assert.Empty(t, got[-1], "nothing else reported accepted")

	// Closed: the two named accepts are not reported again; the direct one is, at its close.
	closeAll()
	r.close() // its fixed-file table held the direct descriptor
	closed := accepts(ring.settled(t, pod))
	assert.Empty(t, closed[0], "no accept again at its close")
	assert.Empty(t, closed[1], "no accept again at its close")
	require.Len(t, closed[2], 1, "the direct accept, reported at its close")
	assert.Zero(t, closed[2][0].Pid, "with no process: no descriptor named it")
	assert.Empty(t, closed[-1])
}
