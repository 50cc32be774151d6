package main

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/podnet/podnet/internal/netnstest"
)

// routedNode is a "node" network namespace that routes between pods, each on its own veth and
// subnet (as routed CNIs wire them), with kube-proxy's nftables rules for one Service whose
// endpoints are the backend pods: every packet between the client pod and a backend crosses the
// node's IP stack and netfilter, where a connection to the Service is translated, as on a
// Kubernetes node. podnet's service_backends reads the translations in this namespace.
type routedNode struct {
	ns, client string
	backends   []string // namespaces
	backendIPs []netip.Addr
}

// The Service: its VIP is routed by nothing but the DNAT; the backends listen on backendPort.
var serviceVIP = netip.MustParseAddrPort("10.96.0.10:80")

// plainPort is a port of the first backend pod no Service leads to. Connections straight to
// backendPort would meet the Service's connections' TIME_WAITs there, and be refused: a client's
// TCP timestamps start at an offset per destination address, VIP or pod IP (PAWS).
const backendPort, plainPort = 9000, 9001

// newRoutedNode creates the node and its pods; tag names them apart from other runs'. Pod k
// (from 1: the client, then the backends) is 10.215.k.2/24 behind the node's 10.215.k.1.
func newRoutedNode(tag string, backends int) (*routedNode, error) {
	n := &routedNode{ns: "pnb-node-" + tag, client: "pnb-rc-" + tag}
	steps := [][]string{
		{"ip", "netns", "add", n.ns},
		{"ip", "-n", n.ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", n.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	steps = append(steps, n.podSteps(1, n.client)...)
	// The client's side of every connection closes last (loadgen's server closes first), so it
	// keeps no TIME_WAIT; a wide port range still spares it waiting on the backends' ones.
	steps = append(steps, []string{"ip", "netns", "exec", n.client, "sysctl", "-q", "net.ipv4.ip_local_port_range=1024 65535"})
	var endpoints []netip.AddrPort
	for k := 2; k < 2+backends; k++ {
		ns := fmt.Sprintf("pnb-rb%d-%s", k-1, tag)
		ip := netip.AddrFrom4([4]byte{10, 215, byte(k), 2})
		n.backends, n.backendIPs = append(n.backends, ns), append(n.backendIPs, ip)
		endpoints = append(endpoints, netip.AddrPortFrom(ip, backendPort))
		steps = append(steps, n.podSteps(k, ns)...)
		steps = append(steps, []string{"ip", "netns", "exec", ns, "sysctl", "-q", "net.core.somaxconn=8192"})
	}
	if err := runSteps(steps); err != nil {
		n.delete()
		return nil, err
	}
	rules := netnstest.KubeProxyRules(netnstest.Service{Name: "bench", VIP: serviceVIP, Backends: endpoints})
	nft := exec.Command("ip", "netns", "exec", n.ns, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		n.delete()
		return nil, fmt.Errorf("loading kube-proxy's rules in %s (nft): %w: %s", n.ns, err, out)
	}
	// The rules bring conntrack into the node. Its TIME_WAIT entries stay 120 s by default: at
	// this load's rate they would fill the (machine-wide) table within a minute, which then
	// drops new connections. Per-namespace setting, loaded with conntrack by the rules above.
	if err := runSteps([][]string{{"ip", "netns", "exec", n.ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1"}}); err != nil {
		n.delete()
		return nil, err
	}
	return n, nil
}

// podSteps make pod k in namespace ns: a veth to the node, an address, a default route via the
// node's end of it.
func (n *routedNode) podSteps(k int, ns string) [][]string {
	host := fmt.Sprintf("pnbr%d%s", k, strings.TrimPrefix(n.ns, "pnb-node-"))
	gw, ip := fmt.Sprintf("10.215.%d.1", k), fmt.Sprintf("10.215.%d.2", k)
	return [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", host, "netns", n.ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", n.ns, "addr", "add", gw + "/24", "dev", host},
		{"ip", "-n", n.ns, "link", "set", host, "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", gw},
	}
}

// netnsPath is the node namespace's file, as podnet's service_backends.node_netns takes it.
func (n *routedNode) netnsPath() string { return "/run/netns/" + n.ns }

// delete removes the node and its pods (and with them their veths).
func (n *routedNode) delete() {
	for _, ns := range append([]string{n.ns, n.client}, n.backends...) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// runSteps runs commands in order, stopping at the first that fails.
func runSteps(steps [][]string) error {
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}
