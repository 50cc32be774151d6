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
		local string
		want  Role
	}{
		{"10.0.0.1:80", Server},          // IPv4 wildcard
		{"[fd00::1]:80", Client},         // an IPv4 wildcard does not take IPv6
		{"10.0.0.1:443", Server},         // a dual-stack wildcard takes unmapped IPv4
		{"[fd00::1]:443", Server},        // and IPv6
		{"10.0.0.1:8080", Server},        // the bound address
		{"127.0.0.1:8080", Client},       // another address, same port
		{"[fd00::1]:9000", Server},       // the bound IPv6 address
		{"[fd00::2]:9000", Client},       // another one
		{"10.0.0.1:41000", Client},       // an ephemeral port
		{"[::ffff:10.0.0.1]:80", Client}, // never met: addresses are unmapped when parsed
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, roleOf(netip.MustParseAddrPort(tt.local), ls), tt.local)
	}
}
