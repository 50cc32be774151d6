package main

import (
	"encoding/json"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// The bulk mode (workload go-bulk): each worker holds one connection and writes bulkChunk
// bytes at a time until the deadline, the server discarding them. It measures what podnet
// costs per byte moved, not per connection (issue 18: the DNS names program runs on every
// packet delivered to a socket): its loadResult counts writes of bulkChunk, not connections, so
// the report's "per connection" columns read per 64 KiB for it, and its rate is writes/s.
const (
	modeBulk  = "bulk"
	bulkChunk = 64 << 10
)

// bulkLoad runs the bulk mode and prints a loadResult: Connections = writes of bulkChunk,
// P50/P99 = one write's latency.
func bulkLoad(addr string, workers int, duration time.Duration) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		all   []time.Duration
		errs  int64
		start = time.Now()
		stop  = start.Add(duration)
	)
	for range workers {
		wg.Go(func() {
			lat, err := bulkWorker(addr, stop)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil {
				errs++
			}
		})
	}
	wg.Wait()
	r := loadResult{Connections: int64(len(all)), Errors: errs, Elapsed: time.Since(start)}
	if len(all) > 0 {
		slices.Sort(all)
		r.P50, r.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func bulkWorker(addr string, deadline time.Time) ([]time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, bulkChunk)
	var lat []time.Duration
	for t := time.Now(); t.Before(deadline); t = time.Now() {
		if _, err := c.Write(buf); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}
