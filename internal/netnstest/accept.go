package netnstest

import (
	"io"
	"net"
	"net/netip"
	"testing"
)

// AcceptAll listens at addr in the pod and closes every connection as soon as it is accepted,
// telling accepted (if set) its two ends, until stop or the test's end.
func (p *Pod) AcceptAll(t testing.TB, addr netip.AddrPort, accepted func(local, remote netip.AddrPort)) (stop func()) {
	t.Helper()
	var ln net.Listener
	if err := p.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listen at %v in %s: %v", addr, p.Name, err)
	}
	stop = func() { _ = ln.Close() }
	t.Cleanup(stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
			if accepted != nil {
				accepted(c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort())
			}
		}
	}()
	return stop
}

// DiscardAll serves addr in the pod until the test ends: every connection's bytes are read and
// dropped until its client closes it (a sink for transfers).
func (p *Pod) DiscardAll(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := p.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listen at %v in %s: %v", addr, p.Name, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
}
