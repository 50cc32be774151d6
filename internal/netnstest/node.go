package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// Node is a "node" network namespace that routes between its pods, each on its own veth with
// its own subnet (as routed CNIs wire pods: Calico, Cilium, kindnet), so that every packet
// between two pods crosses the node's IP stack and its netfilter rules — kube-proxy's
// Service DNAT among them. A Network's bridge would switch them past netfilter.
type Node struct {
	// Pod is the node's own namespace: processes run there as hostNetwork pods do.
	*Pod
	t      testing.TB
	id     string
	subnet byte // second octet of 10.X.k.0/24 and X of fd00:214:X:k::/64
	pods   int
}

// NewNode creates the node namespace, forwarding IPv4 and IPv6. Deleted at test cleanup.
func NewNode(t testing.TB, subnet byte) *Node {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := &Node{t: t, id: hex.EncodeToString(b), subnet: subnet}
	n.Pod = &Pod{Name: "pnnode-" + n.id, t: t}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.Name).Run() })
	n.Exec("ip", "link", "set", "lo", "up")
	n.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	n.Exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return n
}

// NetnsPath is the node namespace's file, as podnet's kernel options take it.
func (n *Node) NetnsPath() string { return "/run/netns/" + n.Name }

// AddPod creates pod k (from 1) with 10.<subnet>.k.2/24 and fd00:214:<subnet>:k::2/64, its
// default route through the node (.1 and ::1 on the node's end of its veth). The node's own
// address on that link is the pod's gateway; the node has a route to every pod.
func (n *Node) AddPod() *Pod {
	t := n.t
	t.Helper()
	n.pods++
	k := n.pods
	p := &Pod{
		Name: fmt.Sprintf("pnr%d-%s", k, n.id),
		IPv4: netip.AddrFrom4([4]byte{10, n.subnet, byte(k), 2}),
		IPv6: netip.MustParseAddr(fmt.Sprintf("fd00:214:%x:%x::2", n.subnet, k)),
		t:    t,
	}
	gw4 := fmt.Sprintf("10.%d.%d.1", n.subnet, k)
	gw6 := fmt.Sprintf("fd00:214:%x:%x::1", n.subnet, k)
	Run(t, "ip", "netns", "add", p.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.Name).Run() })
	host := fmt.Sprintf("pnrv%d%s", k, n.id)
	Run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.Name)
	Run(t, "ip", "link", "set", host, "netns", n.Name)
	n.Exec("ip", "addr", "add", gw4+"/24", "dev", host)
	n.Exec("ip", "-6", "addr", "add", gw6+"/64", "dev", host, "nodad")
	n.Exec("ip", "link", "set", host, "up")
	p.Exec("ip", "link", "set", "lo", "up")
	p.Exec("ip", "addr", "add", p.IPv4.String()+"/24", "dev", "eth0")
	p.Exec("ip", "-6", "addr", "add", p.IPv6.String()+"/64", "dev", "eth0", "nodad")
	p.Exec("ip", "link", "set", "eth0", "up")
	p.Exec("ip", "route", "add", "default", "via", gw4)
	p.Exec("ip", "-6", "route", "add", "default", "via", gw6)
	return p
}

// Nft loads an nftables script into the node's namespace.
func (n *Node) Nft(script string) {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("nft -f in %s: %v\n%s\n%s", n.Name, err, out, script)
	}
}
