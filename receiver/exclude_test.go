package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/confmap"
)

func TestExclusions(t *testing.T) {
	e := newExclusions(ExcludeConfig{ServerPorts: []int{10250}, PeerCIDRs: []string{"127.0.0.0/8", "fd00:1::5/64"}})
	for _, tc := range []struct {
		peer string
		port uint16
		want bool
	}{
		{"10.1.0.9", 10250, true},
		{"10.1.0.9", 8080, false},
		{"127.0.0.53", 53, true},
		{"fd00:1::99", 443, true}, // host bits of the configured CIDR do not matter
		{"fd00:2::1", 443, false},
	} {
		assert.Equalf(t, tc.want, e.excluded(netip.MustParseAddr(tc.peer), tc.port), "%+v", tc)
	}
	// Validation runs through confmap like any collector config (the field is nested).
	cfg := NewDefaultConfig()
	cfg.Exclude.PeerCIDRs = []string{"nope"}
	assert.ErrorContains(t, confmap.Validate(cfg), "exclude.peer_cidrs[0]")
}
