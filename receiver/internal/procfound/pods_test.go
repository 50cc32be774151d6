//go:build linux

package procfound

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// startPause keeps a process in the pod's namespace, as a pod's pause container does: Scan
// reads a namespace's tables through a process living in it.
func startPause(t testing.TB, pod *netnstest.Pod) {
	t.Helper()
	cmd := pod.Command("sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pod.WaitInside(cmd.Process.Pid) // ip netns exec enters the namespace after Start returns
}

// listen opens a listener inside the pod, held by this process.
func listen(t testing.TB, pod *netnstest.Pod, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := pod.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// connect dials ln from inside the pod and returns both ends, held by this process.
func connect(t testing.TB, pod *netnstest.Pod, network, addr string, ln net.Listener) (client, server *net.TCPConn) {
	t.Helper()
	var c net.Conn
	if err := pod.Do(func() (err error) { c, err = net.Dial(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// portOf is the port ln listens on.
func portOf(ln net.Listener) uint16 { return ln.Addr().(*net.TCPAddr).AddrPort().Port() }

// expect is the Conn Scan should report for c, a socket of this process in namespace ns.
func expect(t testing.TB, ns uint32, c *net.TCPConn, role Role, state uint8) Conn {
	t.Helper()
	return Conn{
		NetnsIno: ns,
		Local:    unmap(c.LocalAddr().(*net.TCPAddr).AddrPort()),
		Peer:     unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort()),
		Role:     role, RoleGuessed: true,
		PID: uint32(os.Getpid()), Comm: selfComm(t),
		Inode: socketIno(t, c), State: state,
	}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func socketIno(t testing.TB, c *net.TCPConn) uint64 {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var statErr error
	if err := raw.Control(func(fd uintptr) { statErr = unix.Fstat(int(fd), &st) }); err != nil || statErr != nil {
		t.Fatal(err, statErr)
	}
	return st.Ino
}

func selfComm(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func itoa(port uint16) string { return strconv.Itoa(int(port)) }
