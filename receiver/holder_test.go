package podnetreceiver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/netnstest"
)

// holderEnv makes the test binary a process that holds many idle connections in a pod: the
// netnstest helpers make one connection per process, and connections that predate podnet's
// Start must be held by processes of the pods (their cgroups name the pods).
const holderEnv = "PODNET_RECEIVER_HOLDER"

// runHolder: "serve ADDR N" accepts N connections and closes each when its peer does;
// "dial ADDR N" makes N connections, then closes the first K not yet closed at each
// "close K" line on stdin. Each says "ready" once it holds N, and exits when stdin closes.
func runHolder(args []string) error {
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var conns []net.Conn
	switch args[0] {
	case "serve":
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	case "dial":
		for range n {
			c, err := net.Dial("tcp", args[1])
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
	default:
		return fmt.Errorf("unknown holder mode %q", args[0])
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		k, err := strconv.Atoi(strings.TrimPrefix(in.Text(), "close "))
		if err != nil {
			return err
		}
		for _, c := range conns[:k] {
			_ = c.Close()
		}
		conns = conns[k:]
		fmt.Println("closed")
	}
	return nil
}

// holder is a running holder process.
type holder struct {
	pid int
	in  io.WriteCloser
	out *bufio.Reader
}

// startHolder runs a holder in the pod and waits for its first line (want).
func startHolder(t *testing.T, pod *netnstest.Pod, want string, args ...string) *holder {
	t.Helper()
	sp := pod.Spawn(t, holderEnv+"=1", args...)
	h := &holder{pid: sp.Cmd.Process.Pid, in: sp.In, out: sp.Out}
	h.expect(t, want)
	return h
}

func (h *holder) expect(t *testing.T, want string) {
	t.Helper()
	if line, err := h.out.ReadString('\n'); err != nil || line != want+"\n" {
		t.Fatalf("holder %d: got %q (%v), want %q", h.pid, line, err, want)
	}
}

// close makes a dialling holder close k of its connections.
func (h *holder) close(t *testing.T, k int) {
	t.Helper()
	if _, err := fmt.Fprintf(h.in, "close %d\n", k); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "closed")
}
