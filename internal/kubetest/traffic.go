package kubetest

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// Traffic counts what the API server sends one client and which requests the client made:
// the API server's side of a watcher's cost, measured where it arrives.
type Traffic struct {
	wire atomic.Int64 // bytes read from the client's connections: TLS, HTTP/2 framing, gzip and all

	mu       sync.Mutex
	requests map[Request]int
	body     map[Request]int64 // response body bytes after the transport's gzip decoding
	types    map[Request]map[string]bool
}

// Request is a kind of call: "list" or "watch", the URL path (which names the resource and,
// for a namespaced call, the namespace) and the field selector (which tells a node's own pods
// from every pod of the cluster).
type Request struct{ Verb, Path, FieldSelector string }

// Count returns a copy of cfg whose connections and requests are counted by a new Traffic.
func Count(cfg *rest.Config) (*rest.Config, *Traffic) {
	tr := &Traffic{requests: map[Request]int{}, body: map[Request]int64{}, types: map[Request]map[string]bool{}}
	out := rest.CopyConfig(cfg)
	dialer := &net.Dialer{}
	out.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, n: &tr.wire}, nil
	}
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper { return roundTripper{rt, tr} })
	return out, tr
}

// WireBytes is every byte the API server sent this client so far.
func (tr *Traffic) WireBytes() int64 { return tr.wire.Load() }

// Requests returns how many calls of each kind were made so far.
func (tr *Traffic) Requests() map[Request]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.requests)
}

// BodyBytes returns the response body bytes received per kind of call so far.
func (tr *Traffic) BodyBytes() map[Request]int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.body)
}

// ContentTypes returns the Content-Type of the responses per kind of call so far.
func (tr *Traffic) ContentTypes() map[Request][]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[Request][]string, len(tr.types))
	for k, set := range tr.types {
		for t := range set {
			out[k] = append(out[k], t)
		}
	}
	return out
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

type roundTripper struct {
	next http.RoundTripper
	tr   *Traffic
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := "list"
	if req.URL.Query().Get("watch") == "true" || strings.Contains(req.URL.Path, "/watch/") {
		verb = "watch"
	}
	if req.Method != http.MethodGet {
		verb = strings.ToLower(req.Method)
	}
	key := Request{Verb: verb, Path: req.URL.Path, FieldSelector: req.URL.Query().Get("fieldSelector")}
	rt.tr.mu.Lock()
	rt.tr.requests[key]++
	rt.tr.mu.Unlock()
	resp, err := rt.next.RoundTrip(req)
	if resp != nil {
		rt.tr.mu.Lock()
		if rt.tr.types[key] == nil {
			rt.tr.types[key] = map[string]bool{}
		}
		rt.tr.types[key][resp.Header.Get("Content-Type")] = true
		rt.tr.mu.Unlock()
	}
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, tr: rt.tr, key: key}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	tr  *Traffic
	key Request
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.tr.mu.Lock()
		b.tr.body[b.key] += int64(n)
		b.tr.mu.Unlock()
	}
	return n, err
}
