// Package netnstest builds throwaway "pods" for tests: network namespaces joined by a bridge,
// each with its own IPv4 and IPv6 address, so real processes can make real TCP connections
// that never leave namespaces the test created. Needs root.
package netnstest // import "github.com/podnet/podnet/internal/netnstest"

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireRoot skips a test that needs root, saying so; in CI (CI set) it fails instead,
// because CI runs as root and a skip there would hide a broken test.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test loads eBPF / creates network namespaces and must run as root in CI")
	}
	t.Skip("needs root (eBPF, network namespaces): run `sudo go test ./...`")
}

// Network is a bridge in its own namespace; pods attach to it.
type Network struct {
	t      testing.TB
	id     string // short random tag in every name, so parallel runs never collide
	bridge string // namespace holding the bridge
	subnet byte   // third octet of 10.213.X.0/24 and X of fd00:213:X::/64
	pods   int
}

// NewNetwork creates the bridge namespace. subnet picks 10.213.<subnet>.0/24 so concurrent
// networks in one test binary stay apart. Everything is deleted at test cleanup.
func NewNetwork(t testing.TB, subnet byte) *Network {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := &Network{t: t, id: hex.EncodeToString(b), subnet: subnet}
	n.bridge = "pnbr-" + n.id
	Run(t, "ip", "netns", "add", n.bridge)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.bridge).Run() })
	n.inBridge("ip", "link", "add", "br0", "type", "bridge")
	n.inBridge("ip", "link", "set", "br0", "up")
	return n
}

// Pod is a network namespace with one interface on the network.
type Pod struct {
	Name string // netns name, usable with `ip netns exec`
	IPv4 netip.Addr
	IPv6 netip.Addr
	// Cgroup, when set, is the cgroup2 directory the pod's commands run in (from their first
	// instruction, so their sockets belong to it).
	Cgroup string
	t      testing.TB
}

// AddPod creates a pod namespace with addresses 10.213.<subnet>.<k> and fd00:213:<subnet>::<k>.
func (n *Network) AddPod() *Pod {
	t := n.t
	t.Helper()
	n.pods++
	k := n.pods + 1
	p := &Pod{
		Name: fmt.Sprintf("pn%d-%s", n.pods, n.id),
		IPv4: netip.AddrFrom4([4]byte{10, 213, n.subnet, byte(k)}),
		IPv6: netip.MustParseAddr(fmt.Sprintf("fd00:213:%x::%x", n.subnet, k)),
		t:    t,
	}
	Run(t, "ip", "netns", "add", p.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.Name).Run() })
	host := fmt.Sprintf("pnv%d%s", n.pods, n.id)
	Run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.Name)
	Run(t, "ip", "link", "set", host, "netns", n.bridge)
	n.inBridge("ip", "link", "set", host, "master", "br0", "up")
	p.Exec("ip", "link", "set", "lo", "up")
	p.Exec("ip", "addr", "add", p.IPv4.String()+"/24", "dev", "eth0")
	p.Exec("ip", "-6", "addr", "add", p.IPv6.String()+"/64", "dev", "eth0", "nodad")
	p.Exec("ip", "link", "set", "eth0", "up")
	return p
}

func (n *Network) inBridge(args ...string) {
	n.t.Helper()
	Run(n.t, append([]string{"ip", "netns", "exec", n.bridge}, args...)...)
}

// Exec runs a command inside the pod and fails the test if it fails.
func (p *Pod) Exec(args ...string) string {
	p.t.Helper()
	return Run(p.t, append([]string{"ip", "netns", "exec", p.Name}, args...)...)
}

// Command returns an unstarted command that runs inside the pod (and its cgroup, if set).
func (p *Pod) Command(name string, args ...string) *exec.Cmd {
	argv := append([]string{name}, args...)
	if p.Name != "" {
		argv = append([]string{"ip", "netns", "exec", p.Name}, argv...)
	}
	if p.Cgroup != "" {
		// The shell joins the cgroup, then becomes the command: same pid, no socket before.
		argv = append([]string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, p.Cgroup}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// HostPod returns a "hostNetwork pod": processes in the host's network namespace (Name is
// empty), told apart only by their cgroup. It reaches the network's pods through the bridge
// namespace only if routed there; tests use it as a server reached on loopback.
func HostPod(t testing.TB, cgroup string) *Pod {
	return &Pod{Cgroup: cgroup, IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), t: t}
}

// NetnsInode is the inode of the pod's network namespace, as the kernel reports it.
func (p *Pod) NetnsInode() uint32 {
	p.t.Helper()
	path := "/run/netns/" + p.Name
	if p.Name == "" {
		// This thread's namespace, not the process's: /proc/self names the main thread, and
		// Do can leave the main thread parked in a pod's namespace (the Go runtime wedges a
		// locked main thread instead of ending it). Unlocked threads never leave the host's.
		path = "/proc/thread-self/ns/net"
	}
	var st syscallStat
	if err := stat(path, &st); err != nil {
		p.t.Fatalf("stat netns %s: %v", p.Name, err)
	}
	return uint32(st.Ino)
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// DropSYNs makes the pod's firewall drop incoming connection attempts to port, so that
// connects to it time out (the way a NetworkPolicy or a dead node looks to a client). The
// filter counts what it dropped.
func (p *Pod) DropSYNs(port int) *Filter {
	p.t.Helper()
	return p.Filter("podnet_test", "input", "tcp dport "+strconv.Itoa(port), "drop")
}

// FastSYNTimeout makes connects from the pod give up after one SYN retry (~3 s, not ~2 min).
func (p *Pod) FastSYNTimeout() {
	p.t.Helper()
	p.Exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
}

// WaitInside waits (up to 5 s) until process pid lives in the pod's network namespace: a command
// started through `ip netns exec` enters it only after Start has returned.
func (p *Pod) WaitInside(pid int) {
	p.t.Helper()
	want := p.NetnsInode()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st syscallStat
		if err := stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err == nil && uint32(st.Ino) == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("process %d did not enter the namespace of pod %s within 5 s", pid, p.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
