package netnstest

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Overflow makes a listener at port in the pod with a backlog of 1 that never accepts (a helper
// process of the pod), hits it with n connects at once from client, waits through a round of SYN
// retransmissions, and closes the clients (no more SYNs: the counts stay put); the listener stays
// open until the test ends. It returns the listening process's pid.
func (p *Pod) Overflow(client *Pod, port, n int) (pid int) {
	p.t.Helper()
	pid, _ = p.overflow(client, port, n)
	return pid
}

// OverflowAndClose is Overflow, then the listener closes (its process exits).
func (p *Pod) OverflowAndClose(client *Pod, port, n int) {
	p.t.Helper()
	_, stop := p.overflow(client, port, n)
	stop()
}

func (p *Pod) overflow(client *Pod, port, n int) (pid int, stop func()) {
	p.t.Helper()
	pid, stop = p.listenUnaccepted(port, 1)
	fds, err := client.connectMany(p.IPv4, port, n)
	defer closeAll(fds)
	if err != nil {
		p.t.Fatalf("connecting to %d in %s: %v", port, p.Name, err)
	}
	time.Sleep(1500 * time.Millisecond) // a round of SYN retransmissions, dropped too
	return pid, stop
}

// OverflowAfterLostSYNACKs overflows a listener at port (backlog 4, never accepting) where the
// listener's socket drop count (sk_drops) exceeds the namespace's ListenDrops: three connections
// fill its queue but one place; then the client's namespace drops SYN-ACKs from port while four
// more connect, so their SYNs are retransmitted to pending requests (refused: no ListenDrops), and
// once SYN-ACKs pass their last ACKs find the queue full (one ListenDrops, two socket drops each).
// It returns the listening process's pid.
func (p *Pod) OverflowAfterLostSYNACKs(client *Pod, port int) (pid int) {
	p.t.Helper()
	pid, _ = p.listenUnaccepted(port, 4)
	first, err := client.connectMany(p.IPv4, port, 3)
	defer closeAll(first)
	if err != nil {
		p.t.Fatalf("connecting to %d in %s: %v", port, p.Name, err)
	}
	time.Sleep(300 * time.Millisecond)
	synacks := client.Filter("podnet_synack_loss", "input", "tcp sport "+strconv.Itoa(port)+" tcp flags & (syn | ack) == syn | ack", "drop")
	more, err := client.connectMany(p.IPv4, port, 4)
	defer closeAll(more)
	if err != nil {
		p.t.Fatalf("connecting to %d in %s: %v", port, p.Name, err)
	}
	time.Sleep(1200 * time.Millisecond) // the clients retransmit their SYNs (after 1 s)
	synacks.Remove()
	time.Sleep(3 * time.Second) // the server's SYN-ACK timer (1 s, 2 s) finds the queue full
	return pid
}

// listenUnaccepted starts a helper process of the pod listening at port with backlog, never
// accepting, until stop or the test's end.
func (p *Pod) listenUnaccepted(port, backlog int) (pid int, stop func()) {
	pid, stop = p.StartBacklogHolder(p.t, netip.AddrPortFrom(p.IPv4, uint16(port)).String(), backlog)
	p.t.Cleanup(stop)
	return pid, stop
}

// connectMany starts n non-blocking connects from the pod to addr:port.
func (p *Pod) connectMany(addr netip.Addr, port, n int) (fds []int, err error) {
	err = p.Do(func() error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}); !errors.Is(err, unix.EINPROGRESS) {
				return err
			}
		}
		return nil
	})
	return fds, err
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
