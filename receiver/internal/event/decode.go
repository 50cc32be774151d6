package event

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/podnet/podnet/bpf"
)

const (
	afInet  = 2
	afInet6 = 10
)

// Bits of the kernel's event.flags that decoding reads; other bits are ignored.
const (
	flagRoleGuessed = uint8(bpf.PodnetEventFlagEVENT_FLAG_ROLE_GUESSED)
	flagFound       = uint8(bpf.PodnetEventFlagEVENT_FLAG_FOUND)
	flagDialled     = uint8(bpf.PodnetEventFlagEVENT_FLAG_DIALLED)
	flagOpenUnseen  = uint8(bpf.PodnetEventFlagEVENT_FLAG_OPEN_UNSEEN)
)

// RecordSize is the size of one kernel record.
const RecordSize = int(unsafe.Sizeof(bpf.PodnetEvent{}))

// ErrMalformed wraps every decode failure so callers can count them as one kind.
var ErrMalformed = errors.New("malformed event")

// Decode reads one ring-buffer record in place (no binary.Read: ~10x cheaper) into e, converting
// kernel boot-clock times with clock.
func Decode(raw []byte, clock *Clock, e *Event) error {
	if len(raw) != RecordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(raw), RecordSize)
	}
	// The record is copied out of the ring into a Go-allocated buffer, which is 8-byte aligned.
	return FromKernel((*bpf.PodnetEvent)(unsafe.Pointer(unsafe.SliceData(raw))), clock, e)
}

// FromKernel decodes one kernel event already in its Go type (the start-up scan's records).
func FromKernel(k *bpf.PodnetEvent, clock *Clock, e *Event) error {
	switch Type(k.Type) {
	case Connect, Accept, Close, Found:
	default:
		return fmt.Errorf("%w: unknown type %d", ErrMalformed, k.Type)
	}
	if r := Role(k.Role); r != Client && r != Server {
		return fmt.Errorf("%w: unknown role %d", ErrMalformed, k.Role)
	}
	local, peer, err := addrs(k)
	if err != nil {
		return err
	}
	*e = Event{
		Type:          Type(k.Type),
		Role:          Role(k.Role),
		Time:          clock.UnixNano(k.TimestampNs),
		Local:         netip.AddrPortFrom(local, k.LocalPort),
		Peer:          netip.AddrPortFrom(peer, k.PeerPort),
		NetnsIno:      k.NetnsIno,
		CgroupID:      k.CgroupId,
		PID:           k.Pid,
		Errno:         k.Error,
		BytesSent:     k.BytesSent,
		BytesReceived: k.BytesReceived,
		SRTTMicros:    k.SrttUs,
		Retransmits:   k.Retransmits,

		CountedBytesSent:     k.CountedBytesSent,
		CountedBytesReceived: k.CountedBytesReceived,
		CountedRetransmits:   k.CountedRetransmits,
		Found:                k.Flags&flagFound != 0,
		RoleGuessed:          k.Flags&flagRoleGuessed != 0,
		OpenUnseen:           k.Flags&flagOpenUnseen != 0,
		SampleOneIn:          k.SampleOneIn,
	}
	switch e.Type {
	case Connect, Accept:
		// The kernel's retransmits and srtt fields hold the handshake's on opens.
		e.SynRetransmits, e.Retransmits = k.Retransmits, 0
		e.HandshakeMicros, e.SRTTMicros = k.SrttUs, 0
	case Close:
		if k.CloseReason == 0 || int(k.CloseReason) >= CloseReasons {
			return fmt.Errorf("%w: close reason %d", ErrMalformed, k.CloseReason)
		}
		e.CloseReason = CloseReason(k.CloseReason)
	}
	if k.StartNs != 0 {
		e.Start = clock.UnixNano(k.StartNs)
	}
	switch {
	case e.Type == Connect && k.Error == 0:
		e.BootStart = k.TimestampNs // an established connect is reported at its start
	case e.Type == Close && k.Flags&flagFound == 0:
		e.BootStart = k.StartNs
	}
	if k.Pid != 0 {
		e.Comm = *(*[16]byte)(unsafe.Pointer(&k.Comm))
	}
	if k.BackendPort != 0 {
		e.Backend = netip.AddrPortFrom(netip.AddrFrom16(k.BackendAddr).Unmap(), k.BackendPort)
		if k.Flags&flagDialled != 0 {
			e.Dialled, e.Backend = e.Backend, e.Peer
		}
	}
	return nil
}

func addrs(k *bpf.PodnetEvent) (local, peer netip.Addr, err error) {
	if local, err = Addr(k.Family, k.LocalAddr); err != nil {
		return local, peer, err
	}
	if peer, err = Addr(k.Family, k.PeerAddr); err != nil {
		return local, peer, err
	}
	// An IPv6 socket's connect to an IPv4-mapped address that failed (no route) has no IPv4
	// local address: "::" where none was chosen, or the native IPv6 address the socket was
	// bound to (which cannot reach an IPv4 peer: ENETUNREACH). The record is in the
	// connection's family, IPv4, so its local address is 0.0.0.0 (found by independent
	// checks: network.type ipv4 beside network.local.address fd56::1).
	if peer.Is4() && local.Is6() {
		local = netip.IPv4Unspecified()
	}
	// The mirror: a socket bound to an IPv4-mapped address whose connect to a native IPv6 peer
	// failed (EAFNOSUPPORT) has an IPv4 local address on an IPv6 record: "::".
	if peer.Is6() && local.Is4() {
		local = netip.IPv6Unspecified()
	}
	return local, peer, nil
}

// Addr decodes a kernel address: IPv4 in the first 4 bytes, or IPv6 with IPv4-mapped
// addresses reported as IPv4.
func Addr(family uint16, b [16]byte) (netip.Addr, error) {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case afInet6:
		return netip.AddrFrom16(b).Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("%w: address family %d", ErrMalformed, family)
}
