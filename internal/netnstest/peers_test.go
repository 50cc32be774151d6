package netnstest

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The exclusions leave keep's addresses alone and take every other, IPv4 and IPv6.
func TestAllPeersBut(t *testing.T) {
	keep := netip.MustParsePrefix("10.213.163.0/24")
	excluded := AllPeersBut(keep)
	in := func(a string) bool {
		return slices.ContainsFunc(excluded, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) })
	}
	for _, a := range []string{"10.213.163.1", "10.213.163.255"} {
		assert.False(t, in(a), a)
	}
	for _, a := range []string{"127.0.0.1", "10.213.162.1", "10.213.164.1", "11.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "fd00:213:a3::1"} {
		assert.True(t, in(a), a)
	}
}
