package event

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/podnet/podnet/bpf"
)

// Ring records are the kernel's, but a decoder bug or a mismatched build would hand user space
// anything: whatever the bytes, Decode errs (ErrMalformed) or yields an event callers can trust —
// a known type, one address family for both ends and never an IPv4-mapped address, a close
// with a reason, no process name without a pid, no duration beyond the event's time. (Written
// by an independent review that fuzzed every parser of outside input; `go test` runs the seeds,
// `go test -fuzz FuzzDecode` looks further.)
func FuzzDecode(f *testing.F) {
	for _, typ := range []Type{Connect, Accept, Close, Found} {
		for _, fam := range []uint16{afInet, afInet6} {
			k := kernelEvent()
			k.Type, k.Family = uint8(typ), fam
			if fam == afInet6 {
				k.LocalAddr = netip.MustParseAddr("fd00::1").As16()
				k.PeerAddr = netip.MustParseAddr("::ffff:10.0.0.2").As16()
			}
			k.BackendPort = 80
			k.BackendAddr = netip.MustParseAddr("::ffff:10.0.0.9").As16()
			b := raw(k)
			f.Add(b)
			f.Add(b[:len(b)-1])
			f.Add(append(append([]byte{}, b...), 0))
		}
	}
	familyAt := int(unsafe.Offsetof(bpf.PodnetEvent{}.Family))
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := append([]byte(nil), b...)
		var e Event
		err := Decode(buf, FixedClock(0), &e)
		if len(b) != RecordSize {
			if err == nil {
				t.Fatalf("a %d-byte record decoded without error: %+v", len(b), e)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("not ErrMalformed: %v", err)
			}
			return
		}
		switch {
		case e.Type.Name() == "podnet.tcp.unknown":
			t.Fatalf("unknown type decoded: %d", e.Type)
		case !e.Local.Addr().IsValid() || !e.Peer.Addr().IsValid():
			t.Fatalf("invalid address: %v %v", e.Local, e.Peer)
		case e.Local.Addr().Is4() != e.Peer.Addr().Is4():
			t.Fatalf("mixed families: local %v peer %v", e.Local, e.Peer)
		case e.Local.Addr().Is4In6() || e.Peer.Addr().Is4In6():
			t.Fatalf("mapped address left: %v %v", e.Local, e.Peer)
		case uint16(buf[familyAt])|uint16(buf[familyAt+1])<<8 == afInet && !e.Peer.Addr().Is4():
			t.Fatalf("AF_INET record with IPv6 peer %v", e.Peer)
		case e.Type == Close && (e.CloseReason == 0 || int(e.CloseReason) >= CloseReasons):
			t.Fatalf("close with reason %d", e.CloseReason)
		case e.PID == 0 && e.Comm != [16]byte{}:
			t.Fatalf("comm without pid")
		}
		if d, ok := e.Duration(); ok && d > e.Time {
			t.Fatalf("duration %d beyond time %d", d, e.Time)
		}
	})
}
