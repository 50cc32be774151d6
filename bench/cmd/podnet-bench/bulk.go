package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The bulk mode (workload go-bulk): each worker holds one connection and writes bulkChunk
// bytes at a time until the deadline, the server discarding them. It measures what podnet
// costs per packet, not per connection (issue 18: the DNS names program runs on every packet
// delivered to a socket): its loadResult counts TCP segments, not connections, so the report's
// "per connection" columns read per segment for it, and its rate is segments/s.
const (
	modeBulk  = "bulk"
	bulkChunk = 64 << 10
)

// bulkLoad runs the bulk mode and prints a loadResult: Connections = TCP segments this network
// namespace sent and received (each one delivered to a socket at one end), P50/P99 = one
// write's latency.
func bulkLoad(addr string, workers int, duration time.Duration) error {
	before, err := tcpSegments()
	if err != nil {
		return err
	}
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
	after, err := tcpSegments()
	if err != nil {
		return err
	}
	r := loadResult{Connections: after - before, Errors: errs, Elapsed: time.Since(start)}
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

// tcpSegments is InSegs + OutSegs of this network namespace (/proc/net/snmp).
func tcpSegments() (int64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		var n int64
		for i, name := range names {
			if (name == "InSegs" || name == "OutSegs") && i < len(fields) {
				v, err := strconv.ParseInt(fields[i], 10, 64)
				if err != nil {
					return 0, err
				}
				n += v
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("/proc/net/snmp: no Tcp counters")
}
