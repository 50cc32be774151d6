package netnstest

import (
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
