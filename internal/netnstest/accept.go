package netnstest

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"testing"
)

// AcceptAll listens at addr in the pod and closes every connection as soon as it is accepted,
// telling accepted (if set) its two ends, until stop or the test's end.
func (p *Pod) AcceptAll(t testing.TB, addr netip.AddrPort, accepted func(local, remote netip.AddrPort)) (stop func()) {
	t.Helper()
	return p.serveEach(t, addr, func(c net.Conn) {
		_ = c.Close()
		if accepted != nil {
			accepted(c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort())
		}
	})
}

// DiscardAll serves addr in the pod until the test ends: every connection's bytes are read and
// dropped until its client closes it (a sink for transfers).
func (p *Pod) DiscardAll(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	p.serveEach(t, addr, func(c net.Conn) {
		go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
	})
}

// AnswerAll serves addr in the pod until the test ends as the helper server does (StartServer),
// for any number of connections: each gets its request line back as "ok <line>", then closed.
// Pod.Dial's client expects that.
func (p *Pod) AnswerAll(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	p.serveEach(t, addr, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte("ok " + line))
		_ = c.Close()
	})
}

// serveEach listens at addr in the pod and hands every accepted connection to serve, in the
// accepting goroutine, until stop or the test's end.
func (p *Pod) serveEach(t testing.TB, addr netip.AddrPort, serve func(net.Conn)) (stop func()) {
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
			serve(c)
		}
	}()
	return stop
}
