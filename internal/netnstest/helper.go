package netnstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a tiny TCP client/server so that tests get real processes (with
// their own pids) inside pod namespaces. A test package enables it with
//
//	func TestMain(m *testing.M) { netnstest.MaybeRunHelper(); os.Exit(m.Run()) }
const helperEnv = "PODNET_NETNSTEST_HELPER"

// MaybeRunHelper runs the helper and exits when the process was started as one.
func MaybeRunHelper() {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	var err error
	switch mode {
	case "serve":
		err = serve(os.Args[1], os.Args[2])
	case "dial":
		err = dial(os.Args[1], os.Args[2])
	case "hold":
		err = hold(os.Args[1])
	case "hold-backlog":
		err = holdBacklog(os.Args[1], os.Args[2])
	case orphanedThreadsMode:
		err = holdWithoutMainThread(os.Args[1], os.Args[2])
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Println(unix.ErrnoName(errno))
		} else {
			fmt.Println(err)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// serve accepts n connections; each gets its request line echoed back as "ok <line>".
func serve(addr, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	for range n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte("ok " + line))
		_ = c.Close()
	}
	return ln.Close()
}

// hold listens but never accepts, until its stdin closes: connections complete the handshake
// in the kernel and are reset, unaccepted, when the listener closes.
func hold(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return ln.Close()
}

// holdBacklog is hold with a listen backlog of its own (an IPv4 address): a small accept queue
// that overflows.
func holdBacklog(addr, backlog string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(backlog)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return err
	}
	if err := unix.Listen(fd, n); err != nil {
		return err
	}
	fmt.Println("listening")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// dial connects, sends payload plus a newline, reads the reply until EOF.
func dial(addr, payload string) error {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload + "\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString(0)
	if errors.Is(err, os.ErrClosed) || err == nil || err.Error() == "EOF" {
		return nil
	}
	return err
}

// Server is a helper process listening inside a pod.
type Server struct {
	Cmd *exec.Cmd
}

// StartServer starts a helper server in the pod that accepts n connections, and waits until
// it listens. It is killed at cleanup if still running.
func (p *Pod) StartServer(t testing.TB, addr string, n int) *Server {
	t.Helper()
	sp := p.Spawn(t, helperEnv+"=serve", addr, strconv.Itoa(n))
	if line, err := sp.Out.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("server in %s did not start: %q %v", p.Name, line, err)
	}
	return &Server{Cmd: sp.Cmd}
}

// StartHolder starts a helper that listens on addr but never accepts; closing the returned
// writer makes it close the listener and exit.
func (p *Pod) StartHolder(t testing.TB, addr string) (stop func()) {
	t.Helper()
	sp := p.Spawn(t, helperEnv+"=hold", addr)
	if line, err := sp.Out.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("holder in %s did not start: %q %v", p.Name, line, err)
	}
	return func() {
		_ = sp.In.Close()
		_ = sp.Cmd.Wait()
	}
}

// StartBacklogHolder is StartHolder with a listen backlog (addr an IPv4 address and port); it
// returns the helper's pid, which is the listening process.
func (p *Pod) StartBacklogHolder(t testing.TB, addr string, backlog int) (pid int, stop func()) {
	t.Helper()
	sp := p.Spawn(t, helperEnv+"=hold-backlog", addr, strconv.Itoa(backlog))
	if line, err := sp.Out.ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("holder in %s did not start: %q %v", p.Name, line, err)
	}
	return sp.Cmd.Process.Pid, func() {
		_ = sp.In.Close()
		_ = sp.Cmd.Wait()
	}
}

// Wait waits for the server to have served all its connections.
func (s *Server) Wait(t testing.TB) {
	t.Helper()
	if err := s.Cmd.Wait(); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// Dial runs a helper client in the pod and returns its pid and its output ("" on success,
// the errno name on failure).
func (p *Pod) Dial(t testing.TB, addr, payload string) (pid int, result string) {
	t.Helper()
	cmd := p.Command(os.Args[0], addr, payload)
	cmd.Env = append(os.Environ(), helperEnv+"=dial")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.Process.Pid, string(trimNewline(out))
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}
