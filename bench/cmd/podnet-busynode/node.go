package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// node is the busy node: pairs of pods (a server pod and a client pod joined by a veth pair,
// each with its kubelet-style cgroup and one holder process) holding connsPerPair
// connections each. Addresses are 10.180.<pair>.1 and .2: each pair is its own link, so no
// address is shared, and nothing leaves the namespaces created here.
type node struct {
	tag        string
	cgroupRoot string // cgroup2 mount
	cgroupBase string // this run's subtree
	netns      []string
	holders    []*holder
	pause      *exec.Cmd // the load namespace's process
	mu         sync.Mutex
}

type holder struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Reader
}

func newNode() (*node, error) {
	root, err := netnstest.Cgroup2Mount()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	n := &node{tag: hex.EncodeToString(b), cgroupRoot: root}
	n.cgroupBase = filepath.Join(root, "podnet-busynode-"+n.tag)
	return n, os.Mkdir(n.cgroupBase, 0o755)
}

// build creates the pods and their connections, workers pairs at a time.
func (n *node) build(pairs, connsPerPair int, holderBin string) error {
	work := make(chan int)
	errs := make(chan error, pairs)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				errs <- n.addPair(p, connsPerPair, holderBin)
			}
		}()
	}
	for p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	for _, h := range n.holders { // every holder's connections are up
		if line, err := h.out.ReadString('\n'); err != nil || line != "ready\n" {
			return fmt.Errorf("holder %v: %q %w", h.cmd.Args, line, err)
		}
	}
	return nil
}

func (n *node) addPair(p, conns int, holderBin string) error {
	srv, cli := fmt.Sprintf("pn17-%s-%ds", n.tag, p), fmt.Sprintf("pn17-%s-%dc", n.tag, p)
	vs, vc := fmt.Sprintf("b17%ss%d", n.tag, p), fmt.Sprintf("b17%sc%d", n.tag, p)
	srvIP, cliIP := fmt.Sprintf("10.180.%d.1", p), fmt.Sprintf("10.180.%d.2", p)
	for _, ns := range []string{srv, cli} {
		if err := run(nil, "ip", "netns", "add", ns); err != nil {
			return err
		}
		n.mu.Lock()
		n.netns = append(n.netns, ns)
		n.mu.Unlock()
	}
	if err := run(nil, "ip", "link", "add", vs, "netns", srv, "type", "veth", "peer", "name", vc, "netns", cli); err != nil {
		return err
	}
	for _, s := range []struct{ ns, dev, ip string }{{srv, vs, srvIP}, {cli, vc, cliIP}} {
		script := fmt.Sprintf("addr add %s/24 dev %s\nlink set %s up\nlink set lo up\n", s.ip, s.dev, s.dev)
		if err := run(strings.NewReader(script), "ip", "-n", s.ns, "-batch", "-"); err != nil {
			return err
		}
	}
	port := "9000"
	s, err := n.startHolder(srv, holderBin, "listen", srvIP, port, strconv.Itoa(conns))
	if err != nil {
		return err
	}
	if line, err := s.out.ReadString('\n'); err != nil || line != "listening\n" {
		return fmt.Errorf("holder in %s: %q %w", srv, line, err)
	}
	_, err = n.startHolder(cli, holderBin, "connect", srvIP, port, strconv.Itoa(conns))
	return err
}

// startHolder runs the pod's one process in its namespace and its own container cgroup, from
// its first instruction (clone3 into the cgroup), so its sockets carry the pod's cgroup id.
func (n *node) startHolder(ns, bin string, args ...string) (*holder, error) {
	uid := newUID()
	dir := filepath.Join(n.cgroupBase, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+strings.ReplaceAll(uid, "-", "_")+".slice", "cri-containerd-"+randomHex(32)+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(cg)
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, UseCgroupFD: true, CgroupFD: cg}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &holder{cmd: cmd, stdin: in, out: bufio.NewReader(out)}
	n.mu.Lock()
	n.holders = append(n.holders, h)
	n.mu.Unlock()
	return h, nil
}

// cleanup stops the holders, deletes the namespaces, then the cgroups; it reports what it
// could not remove and never stops early.
func (n *node) cleanup() {
	for _, h := range n.holders {
		_ = h.stdin.Close()
	}
	for _, h := range n.holders {
		done := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = h.cmd.Process.Kill()
			<-done
		}
	}
	if n.pause != nil {
		_ = n.pause.Process.Kill()
		_ = n.pause.Wait()
	}
	for _, ns := range n.netns {
		if err := run(nil, "ip", "netns", "del", ns); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
	for _, err := range netnstest.RemoveCgroups(n.cgroupBase) {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
	}
}

func run(stdin io.Reader, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func newUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// holdersRSS is the pods' processes' proportional set size together (shared libc pages
// counted once), in KiB.
func (n *node) holdersRSS() int64 {
	var kib int64
	for _, h := range n.holders {
		kib += kiBField(fmt.Sprintf("/proc/%d/smaps_rollup", h.cmd.Process.Pid), "Pss:")
	}
	return kib
}
