package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

func TestExclusions(t *testing.T) {
	e := newExclusions(ExcludeConfig{ServerPorts: []int{10250}, PeerCIDRs: []string{"127.0.0.0/8", "fd00:1::5/64", "::ffff:10.9.0.0/112", "::/0"}})
	for _, tc := range []struct {
		peer string
		port uint16
		want bool
	}{
		{"10.1.0.9", 10250, true},
		{"10.1.0.9", 8080, false},
		{"127.0.0.53", 53, true},
		{"fd00:1::99", 443, true}, // host bits (which Validate refuses) are masked here all the same
		{"fd00:2::1", 443, true},  // ::/0: every IPv6 peer...
		{"10.2.0.1", 443, false},  // ...and no IPv4 one, as in the kernel
		{"10.9.3.4", 443, true},   // an IPv4-mapped range is its IPv4 range (10.9.0.0/16)
		{"10.10.3.4", 443, false},
	} {
		assert.Equalf(t, tc.want, e.excluded(netip.MustParseAddr(tc.peer), tc.port), "%+v", tc)
	}
	// Validation runs through confmap like any collector config (the field is nested).
	cfg := NewDefaultConfig()
	cfg.Exclude.PeerCIDRs = []string{"nope"}
	assert.ErrorContains(t, confmap.Validate(cfg), "exclude.peer_cidrs[0]")
}

// The kernel decides exclusions in tables of 256 entries each: longer lists are refused at
// validation, and what fits reaches the kernel options.
func TestExclusionsFitTheKernelTables(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Exclude.ServerPorts = make([]int, maxExclusions+1)
	for i := range cfg.Exclude.ServerPorts {
		cfg.Exclude.ServerPorts[i] = i + 1
	}
	assert.ErrorContains(t, confmap.Validate(cfg), "exclude: at most 256 server_ports")

	cfg = NewDefaultConfig()
	cfg.Exclude = ExcludeConfig{ServerPorts: []int{10250}, PeerCIDRs: []string{"127.0.0.0/8", "fd00:1::/64"}}
	require.NoError(t, confmap.Validate(cfg))
	opts := cfg.kernelOptions(true, true, true)
	assert.Equal(t, []uint16{10250}, opts.ExcludePorts)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00:1::/64")}, opts.ExcludePeers)
}
