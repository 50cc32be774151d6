package procfound

import (
	"encoding/binary"
	"net/netip"
)

// socketLine is what one line of /proc/net/tcp{,6} says of a socket.
type socketLine struct {
	local, peer netip.AddrPort
	state       uint8
	inode       uint64
}

// Field positions in a line (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c
// get_tcp6_sock): "sl: local rem st tx:rx tr:when retrnsmt uid timeout inode ...".
const (
	fieldLocal = 1
	fieldPeer  = 2
	fieldState = 3
	fieldInode = 9
)

// parseLine decodes one table line. ok is false for the header and for anything malformed.
// It allocates nothing: a node may hold tens of thousands of sockets.
func parseLine(line []byte, v6 bool) (socketLine, bool) {
	var f [fieldInode + 1][]byte
	for i := range f {
		if f[i], line = nextField(line); f[i] == nil {
			return socketLine{}, false
		}
	}
	local, okLocal := parseEndpoint(f[fieldLocal], v6)
	peer, okPeer := parseEndpoint(f[fieldPeer], v6)
	state, okState := parseHex(f[fieldState], 2)
	inode, okInode := parseDecimal(f[fieldInode])
	if !okLocal || !okPeer || !okState || !okInode {
		return socketLine{}, false
	}
	return socketLine{local: local, peer: peer, state: uint8(state), inode: inode}, true
}

// nextField returns the next space-separated field of b (nil at the end) and what follows it.
func nextField(b []byte) (field, rest []byte) {
	start := 0
	for start < len(b) && b[start] == ' ' {
		start++
	}
	end := start
	for end < len(b) && b[end] != ' ' {
		end++
	}
	if start == end {
		return nil, nil
	}
	return b[start:end], b[end:]
}

// parseEndpoint decodes "ADDR:PORT". The kernel prints the address as the 32-bit words it
// holds in memory (one for IPv4, four for IPv6), each with %08X, so each word's hex is the
// host-order value of bytes that are in network order: writing the value back in host order
// restores the bytes. The port is printed after ntohs, as a plain number. IPv4-mapped IPv6
// addresses (IPv4 peers of dual-stack sockets) come back as IPv4.
func parseEndpoint(f []byte, v6 bool) (netip.AddrPort, bool) {
	words := 1
	if v6 {
		words = 4
	}
	if len(f) != words*8+1+4 || f[words*8] != ':' {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	for w := range words {
		v, ok := parseHex(f[w*8:w*8+8], 8)
		if !ok {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(b[w*4:], uint32(v))
	}
	port, ok := parseHex(f[words*8+1:], 4)
	if !ok {
		return netip.AddrPort{}, false
	}
	addr := netip.AddrFrom4([4]byte(b[:4]))
	if v6 {
		addr = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseHex decodes exactly n hex digits (either case).
func parseHex(f []byte, n int) (uint64, bool) {
	if len(f) != n {
		return 0, false
	}
	var v uint64
	for _, c := range f {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// parseDecimal decodes an unsigned decimal of up to 19 digits (no overflow possible).
func parseDecimal(f []byte) (uint64, bool) {
	if len(f) == 0 || len(f) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range f {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
