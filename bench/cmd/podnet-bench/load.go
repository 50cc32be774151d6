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
	"slices"
	"sync"
	"time"
)

// The harness binary is also the load generator and the server: it re-runs itself inside
// the namespaces with a subcommand, so the benchmark needs nothing but this program.

// Load modes: connect = connect and close; request = one small request/response per connection.
const (
	modeConnect = "connect"
	modeRequest = "request"
	reqSize     = 16
	respSize    = 64
)

// loadResult is what one load-generator run prints as JSON.
type loadResult struct {
	Connections int64         `json:"connections"`
	Errors      int64         `json:"errors"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	// Filled by the long-lived workloads, not the load generator: TCP sockets in use and in
	// TIME_WAIT in the two namespaces at the end of the run.
	OpenSockets int64 `json:"-"`
	TimeWait    int64 `json:"-"`
}

func (r loadResult) rate() float64 { return float64(r.Connections) / r.Elapsed.Seconds() }

// serveMain accepts connections until its stdin closes (the harness ended) or max-lifetime.
func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", serverIP+":8080", "listen address")
	mode := fs.String("mode", modeConnect, "connect or request")
	maxLifetime := fs.Duration("max-lifetime", time.Hour, "exit by itself after this long")
	_ = fs.Parse(args)
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", *addr)
	if err != nil {
		return err
	}
	go func() {
		_, _ = os.Stdin.Read(make([]byte, 1))
		_ = ln.Close()
	}()
	time.AfterFunc(*maxLifetime, func() { _ = ln.Close() })
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue // e.g. EMFILE under a burst: keep serving
		}
		go handle(c, *mode)
	}
}

// handle answers one request if asked to, then waits for the client's close, so the client
// is always the end that closes first.
func handle(c net.Conn, mode string) {
	defer c.Close()
	if mode == modeRequest {
		req := make([]byte, reqSize)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if _, err := c.Write(make([]byte, respSize)); err != nil {
			return
		}
	}
	_, _ = io.Copy(io.Discard, c)
}

// loadMain runs workers closed-loop for a fixed duration and prints a loadResult.
func loadMain(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", serverIP+":8080", "server address")
	mode := fs.String("mode", modeConnect, "connect, request or bulk")
	workers := fs.Int("workers", 2, "concurrent connections")
	duration := fs.Duration("duration", 5*time.Second, "how long to run")
	_ = fs.Parse(args)
	stop := time.Now().Add(*duration)
	work := func() ([]time.Duration, int64) { return worker(*addr, *mode, stop) }
	if *mode == modeBulk {
		work = func() ([]time.Duration, int64) { return bulkWorker(*addr, stop) }
	}
	return json.NewEncoder(os.Stdout).Encode(runWorkers(*workers, work))
}

// runWorkers runs work on workers goroutines at once and sums what they did: one latency per
// connection (or write), and their errors.
func runWorkers(workers int, work func() ([]time.Duration, int64)) loadResult {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		all   []time.Duration
		errs  int64
		start = time.Now()
	)
	for range workers {
		wg.Go(func() {
			lat, e := work()
			mu.Lock()
			all, errs = append(all, lat...), errs+e
			mu.Unlock()
		})
	}
	wg.Wait()
	r := loadResult{Connections: int64(len(all)), Errors: errs, Elapsed: time.Since(start)}
	if len(all) > 0 {
		slices.Sort(all)
		r.P50, r.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

// worker makes connections one after another until the deadline; a connection's latency is
// from the start of connect() to the return of close().
func worker(addr, mode string, deadline time.Time) (lat []time.Duration, errs int64) {
	d := net.Dialer{KeepAlive: -1, Timeout: time.Second}
	req, resp := make([]byte, reqSize), make([]byte, respSize)
	lat = make([]time.Duration, 0, 1<<17)
	for t := time.Now(); t.Before(deadline); t = time.Now() {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			errs++
			continue
		}
		if mode == modeRequest {
			if _, err = c.Write(req); err == nil {
				_, err = io.ReadFull(c, resp)
			}
		}
		_ = c.Close()
		if err != nil {
			errs++
			continue
		}
		lat = append(lat, time.Since(t))
	}
	return lat, errs
}
