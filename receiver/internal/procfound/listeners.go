package procfound

import "net/netip"

// listeners are the listening addresses of one network namespace, by port.
type listeners map[uint16][]netip.Addr

func (ls listeners) add(a netip.AddrPort) {
	ls[a.Port()] = append(ls[a.Port()], a.Addr())
}

// roleOf guesses the role of a connection's local end the way the BPF start-up scan does: a
// listener on its local port in its namespace makes it the accepted end. A listener bound to
// one address only claims connections on that address; 0.0.0.0 claims IPv4 ones and :: both
// families (a dual-stack listener's IPv4 connections are unmapped to IPv4 here). Without one
// (closed since, its connections draining), a local port outside the ephemeral range facing a
// peer's port inside it does.
func roleOf(local, peer netip.AddrPort, ls listeners) Role {
	for _, a := range ls[local.Port()] {
		switch {
		case a == local.Addr(),
			a.IsUnspecified() && a.Is6(),
			a.IsUnspecified() && local.Addr().Is4():
			return Server
		}
	}
	if !ephemeral(local.Port()) && ephemeral(peer.Port()) {
		return Server
	}
	return Client
}

// ephemeral says whether port is in the range connect() picks local ports from: the kernel's
// default net.ipv4.ip_local_port_range, which every new network namespace (a pod's) starts
// with; the BPF scan reads each namespace's own.
func ephemeral(port uint16) bool { return port >= 32768 && port <= 60999 }
