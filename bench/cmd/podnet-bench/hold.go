package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Ports of the held connections: idle ones are only accepted and kept, busy ones are read.
const (
	idlePort = "8081"
	busyPort = "8082"
	// busySenders share the busy connections: a few goroutines, so the workload's own cost
	// stays small and does not grow with the connection count.
	busySenders = 4
)

// holdResult is what the hold client prints when it stops: what the busy connections sent.
type holdResult struct {
	BusyBytes int64         `json:"busy_bytes"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// holdServeMain keeps every connection to idlePort open unread and reads and discards what
// arrives on busyPort, until its stdin closes.
func holdServeMain(args []string) error {
	fs := flag.NewFlagSet("hold-serve", flag.ExitOnError)
	fds := fs.Int("fds", 20000, "open files needed")
	_ = fs.Parse(args)
	if err := raiseNofile(*fds); err != nil {
		return err
	}
	lc := net.ListenConfig{KeepAlive: -1}
	idle, err := lc.Listen(context.Background(), "tcp", serverIP+":"+idlePort)
	if err != nil {
		return err
	}
	busy, err := lc.Listen(context.Background(), "tcp", serverIP+":"+busyPort)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		kept []net.Conn // referenced, or the runtime's finalizer would close them
	)
	go acceptAll(idle, func(c net.Conn) { mu.Lock(); kept = append(kept, c); mu.Unlock() })
	go acceptAll(busy, func(c net.Conn) {
		go func() { _, _ = io.Copy(io.Discard, c) }()
	})
	fmt.Println("listening")
	_, _ = os.Stdin.Read(make([]byte, 1))
	return nil // exiting closes every connection
}

func acceptAll(ln net.Listener, keep func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			keep(c)
		}
	}
}

// holdMain opens idle and busy connections, prints "holding" once all are established, and
// writes size bytes every period on each busy connection until its stdin closes.
func holdMain(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	idle := fs.Int("idle", 10000, "idle connections")
	busy := fs.Int("busy", 200, "busy connections")
	size := fs.Int("size", 4096, "bytes per write on a busy connection")
	period := fs.Duration("every", 10*time.Millisecond, "time between writes on a busy connection")
	_ = fs.Parse(args)
	if err := raiseNofile(*idle + *busy + 256); err != nil {
		return err
	}
	d := net.Dialer{KeepAlive: -1, Timeout: 5 * time.Second}
	dial := func(n int, port string) ([]net.Conn, error) {
		cs := make([]net.Conn, 0, n)
		for range n {
			c, err := d.Dial("tcp", serverIP+":"+port)
			if err != nil {
				return nil, fmt.Errorf("connection %d of %d to port %s: %w", len(cs)+1, n, port, err)
			}
			cs = append(cs, c)
		}
		return cs, nil
	}
	idleConns, err := dial(*idle, idlePort)
	if err != nil {
		return err
	}
	busyConns, err := dial(*busy, busyPort)
	if err != nil {
		return err
	}
	start := time.Now()
	var sent atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range min(busySenders, len(busyConns)) {
		wg.Go(func() { sendEvery(busyConns[i:], busySenders, *size, *period, &sent, done) })
	}
	fmt.Println("holding")
	_, _ = os.Stdin.Read(make([]byte, 1))
	close(done)
	wg.Wait()
	runtime.KeepAlive(idleConns) // open until here
	return json.NewEncoder(os.Stdout).Encode(holdResult{BusyBytes: sent.Load(), Elapsed: time.Since(start)})
}

// sendEvery writes size bytes on every stride-th connection of cs at each tick; a round that
// overruns the period drops ticks, which the printed byte count shows.
func sendEvery(cs []net.Conn, stride, size int, period time.Duration, sent *atomic.Int64, done <-chan struct{}) {
	buf := make([]byte, size)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		for i := 0; i < len(cs); i += stride {
			if n, err := cs[i].Write(buf); err == nil {
				sent.Add(int64(n))
			}
		}
	}
}

// raiseNofile lifts RLIMIT_NOFILE to at least n (root may raise the hard limit too).
func raiseNofile(n int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= uint64(n) {
		return nil
	}
	l.Cur, l.Max = uint64(n), max(l.Max, uint64(n))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("RLIMIT_NOFILE to %d: %w", n, err)
	}
	return nil
}
