package main

import (
	"net"
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

// bulkWorker writes bulkChunk at a time on one connection until deadline: one latency per
// write, and 1 error if the connection failed.
func bulkWorker(addr string, deadline time.Time) ([]time.Duration, int64) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, 1
	}
	defer c.Close()
	buf := make([]byte, bulkChunk)
	var lat []time.Duration
	for t := time.Now(); t.Before(deadline); t = time.Now() {
		if _, err := c.Write(buf); err != nil {
			return lat, 1
		}
		lat = append(lat, time.Since(t))
	}
	return lat, 0
}
