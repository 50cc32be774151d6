package netnstest

import (
	"fmt"
	"net/netip"
	"strings"
)

// Service is a ClusterIP Service as kube-proxy programs it: a virtual address and port, and the
// ready endpoints it translates to (none: connections are rejected).
type Service struct {
	Name     string // for chain names only
	VIP      netip.AddrPort
	Backends []netip.AddrPort
}

// KubeProxyRules is the nftables ruleset kube-proxy's nftables mode (Kubernetes 1.31+) installs
// for these Services, reduced to what decides a TCP connection's fate: the services map jumped
// to from nat prerouting (pod traffic) and output (the node's own), one chain per Service that
// picks an endpoint at random (numgen), one DNAT chain per endpoint, and for a Service without
// endpoints the no-endpoint-services map that rejects new connections before any DNAT. All
// Services must be of one family. Load it with Node.Nft; call again with new Services to
// replace it (it deletes the table it creates first).
func KubeProxyRules(services ...Service) string {
	family, addrType := "ip", "ipv4_addr"
	if len(services) > 0 && services[0].VIP.Addr().Is6() {
		family, addrType = "ip6", "ipv6_addr"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table %s kube-proxy\ndelete table %s kube-proxy\ntable %s kube-proxy {\n", family, family, family)
	// Chains first, then the maps whose elements jump to them, then the chains using the maps:
	// nft resolves names in file order.
	b.WriteString("\tchain reject-chain { reject; }\n")
	var withEndpoints, without []string
	for _, s := range services {
		key := fmt.Sprintf("%s . tcp . %d", s.VIP.Addr(), s.VIP.Port())
		if len(s.Backends) == 0 {
			without = append(without, key+" : goto reject-chain")
			continue
		}
		withEndpoints = append(withEndpoints, key+" : goto service-"+s.Name)
		var picks []string
		for i, e := range s.Backends {
			picks = append(picks, fmt.Sprintf("%d : goto endpoint-%s-%d", i, s.Name, i))
			fmt.Fprintf(&b, "\tchain endpoint-%s-%d { meta l4proto tcp dnat to %s; }\n", s.Name, i, e)
		}
		fmt.Fprintf(&b, "\tchain service-%s { numgen random mod %d vmap { %s }; }\n", s.Name, len(s.Backends), strings.Join(picks, ", "))
	}
	for _, m := range []struct {
		name  string
		elems []string
	}{{"service-ips", withEndpoints}, {"no-endpoint-services", without}} {
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s . inet_proto . inet_service : verdict\n", m.name, addrType)
		if len(m.elems) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(m.elems, ", "))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString(`	chain service-endpoints-check { ` + family + ` daddr . meta l4proto . th dport vmap @no-endpoint-services; }
	chain filter-prerouting-pre-dnat { type filter hook prerouting priority -110; policy accept; ct state new jump service-endpoints-check; }
	chain filter-output-pre-dnat { type filter hook output priority -110; policy accept; ct state new jump service-endpoints-check; }
	chain services { ` + family + ` daddr . meta l4proto . th dport vmap @service-ips; }
	chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }
	chain nat-output { type nat hook output priority -100; policy accept; jump services; }
`)
	b.WriteString("}\n")
	return b.String()
}

// DNATOutput does kube-proxy's part for one Service port inside the pod's own namespace: a
// route that lets connect() reach the NAT hook (as a node's default route does), and a DNAT of
// what the pod sends to vip to backend. Enough for tests that need a ClusterIP the pod dials
// and a connection that lands on a backend; KubeProxyRules is the node-wide version.
func (p *Pod) DNATOutput(vip, backend netip.AddrPort) {
	p.Exec("ip", "route", "add", vip.Addr().String()+"/32", "dev", "eth0")
	p.Exec("nft", "add table ip podnet_nat")
	p.Exec("nft", "add chain ip podnet_nat out { type nat hook output priority -100 ; }")
	p.Exec("nft", fmt.Sprintf("add rule ip podnet_nat out ip daddr %s tcp dport %d dnat to %s", vip.Addr(), vip.Port(), backend))
}
