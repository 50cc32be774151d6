package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A connect() in flight is kept in its thread's own storage where tracing programs have task
// storage (5.12+; this kernel), else in the pid_tgid-keyed hash (calls.h). Either way: the call
// is found while it blocks (it reached SYN_SENT), it is over when it returns, whatever it
// returned, and a failure before SYN_SENT is reported once, with its process.
func TestConnectCallsEndWithTheirCall(t *testing.T) {
	netnstest.RequireRoot(t)
	require.True(t, taskStorageForTracing(), "kernel 6.18 has task storage for tracing programs")
	netw := netnstest.NewNetwork(t, 244)
	client, server, unreachable := netw.AddPod(), netw.AddPod(), netw.AddPod()
	client.Exec("ip", "route", "add", "unreachable", unreachable.IPv4.String()+"/32")
	server.AcceptAll(t, netip.AddrPortFrom(server.IPv4, 7244), nil)
	server.DropSYNs(7245)

	for _, inTask := range []bool{true, false} {
		t.Run(fmt.Sprintf("task_storage=%v", inTask), func(t *testing.T) {
			tr, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: 4096, MaxAggregates: 16, noTaskCalls: !inTask})
			require.NoError(t, err)
			defer tr.Close()
			var used bool
			require.NoError(t, tr.coll.Variables[bpf.PodnetVarTaskCalls].Get(&used))
			require.Equal(t, inTask, used, "where a connect() is kept")

			var tid int
			var outcomes []error
			var blocked *bpf.PodnetConnectCall
			require.NoError(t, client.Do(func() error {
				tid = unix.Gettid()
				for _, dst := range []netip.AddrPort{
					netip.AddrPortFrom(unreachable.IPv4, 7244), // fails before SYN_SENT
					netip.AddrPortFrom(server.IPv4, 7244),      // connects
				} {
					outcomes = append(outcomes, connectOnce(dst, 0))
					if c, err := inFlight(tr, tid, inTask); c != nil || err != nil {
						return fmt.Errorf("after connect() to %v returned: in flight %+v (%w)", dst, c, err)
					}
				}
				// Blocks in SYN_SENT (SYNs dropped) until SO_SNDTIMEO: looked at meanwhile.
				var blockedErr error
				done := make(chan struct{})
				go func() {
					defer close(done)
					time.Sleep(200 * time.Millisecond)
					blocked, blockedErr = inFlight(tr, tid, inTask)
				}()
				outcomes = append(outcomes, connectOnce(netip.AddrPortFrom(server.IPv4, 7245), 600*time.Millisecond))
				<-done
				if blockedErr != nil {
					return blockedErr
				}
				if c, err := inFlight(tr, tid, inTask); c != nil || err != nil {
					return fmt.Errorf("after a timed-out connect() returned: in flight %+v (%w)", c, err)
				}
				return nil
			}))
			assert.ErrorIs(t, outcomes[0], unix.EHOSTUNREACH)
			assert.NoError(t, outcomes[1])
			assert.ErrorIs(t, outcomes[2], unix.EINPROGRESS, "SO_SNDTIMEO ends a blocking connect() with EINPROGRESS")
			if assert.NotNil(t, blocked, "the blocked connect() is in flight") {
				assert.Equal(t, uint8(1), blocked.Async, "it reached SYN_SENT")
			}

			events, _ := readAll(t, tr, inNetns(client.NetnsInode()))
			var failed []bpf.PodnetEvent
			for _, e := range events {
				if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) && e.Error != 0 && e.PeerPort == 7244 {
					failed = append(failed, e)
				}
			}
			if assert.Len(t, failed, 1, "the failure before SYN_SENT, reported once") {
				assert.Equal(t, int32(unix.EHOSTUNREACH), failed[0].Error)
				assert.Equal(t, uint32(os.Getpid()), failed[0].Pid)
			}
		})
	}
}

// connectOnce makes one blocking connect() to dst from the calling thread (timeout: SO_SNDTIMEO,
// when not 0) and closes the socket.
func connectOnce(dst netip.AddrPort, timeout time.Duration) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if timeout > 0 {
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			return err
		}
	}
	return unix.Connect(fd, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()})
}

// inFlight is thread tid's connect() in flight as the programs keep it, or nil.
func inFlight(tr *Tracer, tid int, inTask bool) (*bpf.PodnetConnectCall, error) {
	var call bpf.PodnetConnectCall
	if !inTask {
		err := tr.coll.Maps[bpf.PodnetMapConnectCalls].Lookup(uint64(os.Getpid())<<32|uint64(tid), &call)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		return &call, err
	}
	// A thread's storage is looked up through a pidfd of that thread (PIDFD_THREAD is O_EXCL).
	pidfd, err := unix.PidfdOpen(tid, unix.O_EXCL)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pidfd)
	if err := tr.coll.Maps[bpf.PodnetMapConnectTasks].Lookup(int32(pidfd), &call); err != nil {
		return nil, fmt.Errorf("the slot of the thread that called connect(): %w", err)
	}
	if call.Active == 0 {
		return nil, nil
	}
	return &call, nil
}
