package procfound

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The fixtures are lines a 6.18 x86-64 kernel printed for real sockets (a netns whose lo had
// 10.213.121.2 and fd00:213:79::2 added). The kernel prints words in host order, so they
// read right only on little-endian hosts; big-endian ones are covered by the root tests.
func requireLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures were captured on a little-endian host")
	}
}

func TestParseLine(t *testing.T) {
	requireLittleEndian(t)
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		line string
		v6   bool
		want socketLine
	}{
		{
			"IPv4 loopback", "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 120735342 1 0000000021992a84 20 0 0 10 -1                 ",
			false,
			socketLine{ap("127.0.0.1:40065"), ap("127.0.0.1:39806"), stateEstablished, 120735342},
		},
		{
			"IPv4 pod address", "   5: 0279D50A:A67E 0279D50A:E857 01 00000000:00000000 00:00000000 00000000     0        0 120735344 2 00000000d9fcf2c0 20 0 0 10 -1",
			false,
			socketLine{ap("10.213.121.2:42622"), ap("10.213.121.2:59479"), stateEstablished, 120735344},
		},
		{
			"IPv4 half-closed client", "   8: 0100007F:9B80 0100007F:9C81 05 00000000:00000000 00:00000000 00000000     0        0 120735355 1 000000000fba734a 20 0 0 11 -1",
			false,
			socketLine{ap("127.0.0.1:39808"), ap("127.0.0.1:40065"), stateFinWait2, 120735355},
		},
		{
			"IPv4 listener", "   0: 0100007F:9C81 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 120735340 1 00000000550edc5c 100 0 0 10 0",
			false,
			socketLine{ap("127.0.0.1:40065"), ap("0.0.0.0:0"), stateListen, 120735340},
		},
		// TIME_WAIT minisockets print inode 0 (tcp_ipv4.c get_timewait4_sock).
		{
			"IPv4 time-wait", "   1: 0100007F:A51B 0100007F:A2A0 06 00000000:00000000 03:000003A9 00000000     0        0 0 3 000000008b2a4b90",
			false,
			socketLine{ap("127.0.0.1:42267"), ap("127.0.0.1:41632"), 0x06, 0},
		},
		{
			"IPv6 loopback", "   5: 00000000000000000000000001000000:A2B8 00000000000000000000000001000000:D9CB 01 00000000:00000000 00:00000000 00000000     0        0 120735347 2 00000000043f6c48 20 0 0 10 -1",
			true,
			socketLine{ap("[::1]:41656"), ap("[::1]:55755"), stateEstablished, 120735347},
		},
		{
			"IPv6 ULA", "   3: 130200FD000079000000000002000000:944A 130200FD000079000000000002000000:D407 01 00000000:00000000 00:00000000 00000000     0        0 120735350 2 00000000559f1349 20 0 0 10 -1",
			true,
			socketLine{ap("[fd00:213:79::2]:37962"), ap("[fd00:213:79::2]:54279"), stateEstablished, 120735350},
		},
		{
			"IPv4-mapped on a dual-stack socket", "   7: 0000000000000000FFFF00000279D50A:91A7 0000000000000000FFFF00000279D50A:95FE 01 00000000:00000000 00:00000000 00000000     0        0 120735354 1 0000000017c54ea8 20 0 0 10 -1",
			true,
			socketLine{ap("10.213.121.2:37287"), ap("10.213.121.2:38398"), stateEstablished, 120735354},
		},
		{
			"IPv6 wildcard listener", "   1: 00000000000000000000000000000000:91A7 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 120735352 1 000000000ca79eca 100 0 0 10 0",
			true,
			socketLine{ap("[::]:37287"), ap("[::]:0"), stateListen, 120735352},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseLine([]byte(tt.line), tt.v6)
			assert.True(t, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseLineRejectsMalformed(t *testing.T) {
	good := "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 120735342 1 0000000021992a84 20 0 0 10 -1"
	for name, line := range map[string]string{
		"header":          "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		"empty":           "",
		"blank":           "      ",
		"cut short":       good[:60],
		"no inode":        "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0",
		"IPv6 in tcp":     "   5: 00000000000000000000000001000000:A2B8 00000000000000000000000001000000:D9CB 01 00000000:00000000 00:00000000 00000000     0        0 120735347 2",
		"bad hex":         "   4: 0100007G:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 120735342 1",
		"no port":         "   4: 0100007F 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 120735342 1",
		"long state":      "   4: 0100007F:9C81 0100007F:9B7E 001 00000000:00000000 00:00000000 00000000     0        0 120735342 1",
		"negative inode":  "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 -1 1",
		"inode overflows": "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 99999999999999999999 1",
		"binary":          "\x00\xff\xfe: \x01",
	} {
		t.Run(name, func(t *testing.T) {
			_, ok := parseLine([]byte(line), false)
			assert.False(t, ok)
		})
	}
	t.Run("IPv4 in tcp6", func(t *testing.T) {
		_, ok := parseLine([]byte(good), true)
		assert.False(t, ok)
	})
}
