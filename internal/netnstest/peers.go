package netnstest

import "net/netip"

// AllPeersBut is every peer but keep's (an IPv4 range), as exclusions (exclude.peer_cidrs) that
// leave a test's podnet only its own pods' traffic: the IPv4 ranges beside keep, one per bit of
// its prefix, and every IPv6 peer.
func AllPeersBut(keep netip.Prefix) []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix("::/0")}
	a := keep.Addr().As4()
	for bit := range keep.Bits() {
		other := a
		other[bit/8] ^= 0x80 >> (bit % 8)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(other), bit+1).Masked())
	}
	return out
}
