package netnstest

import (
	"net"
	"sync"
	"testing"
)

// LoopbackServer listens on 127.0.0.1 and closes every connection it accepts: traffic whose
// content does not matter. It returns the address to dial and a stop that closes the
// listener and waits for its goroutine (also run when the test ends).
func LoopbackServer(tb testing.TB) (addr string, stop func()) {
	tb.Helper()
	return LoopbackServerFunc(tb, func(c net.Conn) { _ = c.Close() })
}

// LoopbackServerFunc is LoopbackServer with serve run on each accepted connection (on the
// accepting goroutine: serve starts its own if the exchange may block); serve closes it.
func LoopbackServerFunc(tb testing.TB, serve func(net.Conn)) (addr string, stop func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = ln.Close()
			<-done
		})
	}
	tb.Cleanup(stop)
	return ln.Addr().String(), stop
}

// LoopbackConnections makes n short connections to a LoopbackServer, each closed at once (four
// events apiece, both ends in this namespace), and returns the server's address.
func LoopbackConnections(tb testing.TB, n int) string {
	tb.Helper()
	addr, _ := LoopbackServer(tb)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		_ = c.Close()
	}
	return addr
}
