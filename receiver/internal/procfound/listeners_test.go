package procfound

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRoleOf(t *testing.T) {
	ls := listeners{}
	for _, a := range []string{"0.0.0.0:80", "[::]:443", "10.0.0.1:8080", "[fd00::1]:9000"} {
		ls.add(netip.MustParseAddrPort(a))
	}
	tests := []struct {
		local, peer string
		want        Role
	}{
		{"10.0.0.1:80", "10.0.0.9:8080", Server},          // IPv4 wildcard
		{"[fd00::1]:80", "[fd00::9]:8080", Client},        // an IPv4 wildcard does not take IPv6
		{"10.0.0.1:443", "10.0.0.9:8080", Server},         // a dual-stack wildcard takes unmapped IPv4
		{"[fd00::1]:443", "[fd00::9]:8080", Server},       // and IPv6
		{"10.0.0.1:8080", "10.0.0.9:8080", Server},        // the bound address
		{"127.0.0.1:8080", "127.0.0.9:8080", Client},      // another address, same port
		{"[fd00::1]:9000", "[fd00::9]:8080", Server},      // the bound IPv6 address
		{"[fd00::2]:9000", "[fd00::9]:8080", Client},      // another one
		{"10.0.0.1:41000", "10.0.0.9:8080", Client},       // an ephemeral port
		{"[::ffff:10.0.0.1]:80", "10.0.0.9:8080", Client}, // never met: addresses are unmapped when parsed
		{"10.0.0.1:7030", "10.0.0.9:41000", Server},       // no listener: a server port facing an ephemeral one
		{"10.0.0.1:7030", "10.0.0.9:5432", Client},        // two server ports: no telling
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, roleOf(netip.MustParseAddrPort(tt.local), netip.MustParseAddrPort(tt.peer), ls), tt.local)
	}
}
