package k8smeta

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/podnet/podnet/internal/kubetest"
)

// gate is a reverse proxy between a Store and the API server that a test can cut
// (connections refused, as from a dead server), hold (requests wait), and open again on the
// same address. It notes the requests it forwards and the watch streams in which the API
// server said the client's resource version had expired (410), so a test can tell a relist
// from a resumed watch.
type gate struct {
	t     *testing.T
	addr  string
	proxy *httputil.ReverseProxy

	mu    sync.Mutex
	srv   *http.Server
	held  chan struct{} // non-nil while holding; closed to let the requests on
	notes []string
	wg    sync.WaitGroup // Serve goroutines
}

// expiredReason is how a watch stream says the resource version is too old, in any encoding
// (JSON, protobuf and CBOR all carry the Status reason as plain text).
var expiredReason = []byte("Expired")

func newGate(t *testing.T, c *kubetest.Cluster) *gate {
	t.Helper()
	admin := c.AdminConfig()
	upstream, err := url.Parse(admin.Host)
	require.NoError(t, err)
	// TLS to the API server; the Store's own bearer token passes through.
	rt, err := rest.TransportFor(&rest.Config{Host: admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData}})
	require.NoError(t, err)
	g := &gate{t: t}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport:     rt,
		FlushInterval: -1, // watch events as they come
		ErrorLog:      log.New(io.Discard, "", 0),
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Query().Get("watch") == "true" {
				resp.Body = &expiryScanner{ReadCloser: resp.Body, found: func() { g.note("expired", resp.Request) }}
			}
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(func() {
		g.open()
		g.cut()
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	})
	return g
}

// config is the Store's rest.Config pointed at the gate (plain HTTP on loopback).
func (g *gate) config(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Host = "http://" + g.addr
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	return cfg
}

func (g *gate) serve(ln net.Listener) {
	srv := &http.Server{Handler: g, ErrorLog: log.New(io.Discard, "", 0)}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	g.wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			g.t.Errorf("gate: %v", err)
		}
	})
}

// cut closes the listener and every connection: the Store's watches end and its next
// requests are refused.
func (g *gate) cut() {
	g.mu.Lock()
	srv := g.srv
	g.srv = nil
	g.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	g.wg.Wait()
}

// hold listens again but keeps requests waiting until open.
func (g *gate) hold(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	g.held = make(chan struct{})
	g.mu.Unlock()
	ln, err := net.Listen("tcp", g.addr)
	require.NoError(t, err, "listen again on the gate's address")
	g.serve(ln)
}

// open lets held requests on, and later ones straight through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	verb := "list"
	if r.URL.Query().Get("watch") == "true" {
		verb = "watch"
	}
	g.note(verb, r)
	g.proxy.ServeHTTP(w, r)
}

// note records "verb path[?fieldSelector]", which names the informer.
func (g *gate) note(verb string, r *http.Request) {
	what := verb + " " + r.URL.Path
	if fs := r.URL.Query().Get("fieldSelector"); fs != "" {
		what += "?" + fs
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notes = append(g.notes, what)
}

// since returns the notes from the nth on.
func (g *gate) since(n int) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.notes[min(n, len(g.notes)):]...)
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.notes)
}

// expiryScanner calls found once if the stream carries expiredReason, also across reads.
type expiryScanner struct {
	io.ReadCloser
	tail  []byte
	done  bool
	found func()
}

func (s *expiryScanner) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if !s.done && n > 0 {
		buf := append(s.tail, p[:n]...)
		if bytes.Contains(buf, expiredReason) {
			s.done = true
			s.found()
		}
		s.tail = append(s.tail[:0], buf[max(0, len(buf)-len(expiredReason)):]...)
	}
	return n, err
}
