package k8smeta

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// byteMeter counts what a Store receives from the API server, twice: body is the decoded
// response bodies (JSON or protobuf, after gzip, which Go's transport undoes below the
// RoundTripper), wire is every byte read from the TCP connections (TLS and HTTP/2 framing
// included, gzip not undone): what the network and the API server actually carry.
// watchLists counts requests for client-go's streaming watch-list (sendInitialEvents), to
// tell which way an informer got its initial state.
type byteMeter struct{ body, wire, watchLists atomic.Int64 }

// instrument makes cfg count into m. The Dial hook also keeps client-go from sharing a
// cached transport with other clients, whose bytes would otherwise be counted too.
func (m *byteMeter) instrument(cfg *rest.Config) {
	inner := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if inner != nil {
			rt = inner(rt)
		}
		return countingTransport{rt, m}
	}
	var d net.Dialer
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{c, &m.wire}, nil
	}
}

type countingTransport struct {
	rt http.RoundTripper
	m  *byteMeter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Query().Get("sendInitialEvents") == "true" {
		t.m.watchLists.Add(1)
	}
	resp, err := t.rt.RoundTrip(req)
	if err == nil {
		resp.Body = &countingBody{resp.Body, &t.m.body}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// procMemory returns a process's resident set and its peak (VmRSS, VmHWM) in bytes.
func procMemory(pid int) (rss, hwm uint64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(raw)) {
		key, val, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// procCPU returns a process's user + system CPU time (utime + stime of /proc/<pid>/stat, in
// clock ticks of 10 ms: USER_HZ is 100 on every Linux architecture Go supports).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces; fields count from after it.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
