package k8smeta

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestStoreStartsWithoutAPIServer: Start returns after the sync timeout when nothing
// answers, reports why, and Stop still ends every goroutine (TestMain checks).
func TestStoreStartsWithoutAPIServer(t *testing.T) {
	kubeconfig := kubetest.UnreachableKubeconfig(t)
	start := time.Now()
	s, status, synced := startStore(t, kubeconfig, "node-a", time.Second)
	assert.False(t, synced)
	assert.Less(t, time.Since(start), 5*time.Second, "Start is bounded by the sync timeout")
	err := status.next(t, 10*time.Second)
	require.Error(t, err)
	t.Logf("status: %v", err)
	_, ok := s.PodByUID("any")
	assert.False(t, ok, "an empty cache answers")
	_, known := s.ServiceReadyEndpoints("shop", "api", netip.MustParseAddrPort("10.96.0.50:80"))
	assert.False(t, known, "EndpointSlices not listed yet: readiness unknown")
}

// Run returns at once, so the receiver attaches its programs while the informers list;
// WaitSynced is what waits, bounded by the sync timeout counted from Run, and Stop or its
// context ends it.
func TestStoreRunReturnsAndWaitSyncedIsBounded(t *testing.T) {
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubetest.UnreachableKubeconfig(t)}.RESTConfig()
	require.NoError(t, err)
	newStore := func(timeout time.Duration) *Store {
		s, err := NewStore(cfg, Options{NodeName: "node-a", SyncTimeout: timeout})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		return s
	}

	s := newStore(time.Hour)
	assert.False(t, s.WaitSynced(context.Background()), "before Run: nothing to wait for")
	begun := time.Now()
	s.Run()
	assert.Less(t, time.Since(begun), time.Second, "Run does not wait for the API server")
	done := make(chan bool, 1)
	go func() { done <- s.WaitSynced(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	s.Stop()
	select {
	case synced := <-done:
		assert.False(t, synced)
	case <-time.After(5 * time.Second):
		require.Fail(t, "Stop did not end WaitSynced")
	}

	s = newStore(time.Hour)
	s.Run()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.WaitSynced(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case synced := <-done:
		assert.False(t, synced)
	case <-time.After(5 * time.Second):
		require.Fail(t, "a cancelled context did not end WaitSynced")
	}

	s = newStore(1500 * time.Millisecond)
	s.Run()
	time.Sleep(time.Second) // as the receiver loads its programs
	begun = time.Now()
	assert.False(t, s.WaitSynced(context.Background()))
	waited := time.Since(begun)
	assert.Less(t, waited, time.Second, "the sync timeout counts from Run")
	assert.Greater(t, waited, 200*time.Millisecond, "WaitSynced waits out the rest of it")
}

// Stop must not wait out a retry delay while the API server is down: it is
// part of the collector's shutdown. (With streaming watch-list, it waited up to 30 s.)
func TestStopIsPromptWhileAPIServerIsDown(t *testing.T) {
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubetest.UnreachableKubeconfig(t)}.RESTConfig()
	require.NoError(t, err)
	calls := &listCalls{at: map[string][]time.Time{}}
	cfg.WrapTransport = calls.wrap
	s, err := NewStore(cfg, Options{NodeName: "node-a", SyncTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	s.Start()
	// Every informer (4) is waiting out a retry delay longer than the bound below: its last
	// retry came that long after the one before (outageRetry: from the third retry on, at
	// least 2 s apart).
	const bound = 2 * time.Second
	require.Eventually(t, func() bool { return calls.allBackingOff(4, bound) }, 60*time.Second, 50*time.Millisecond,
		"informers back off to %v between retries", bound)
	start := time.Now()
	s.Stop()
	assert.Less(t, time.Since(start), bound)
}

// listCalls records when each informer sends a request to the API server, by URL (each
// informer lists its own resource with its own selector).
type listCalls struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (c *listCalls) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		key := req.URL.Path + "?" + req.URL.Query().Get("fieldSelector")
		c.at[key] = append(c.at[key], time.Now())
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

// allBackingOff reports whether n informers have each retried after a wait of at least d.
func (c *listCalls) allBackingOff(n int, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	backingOff := 0
	for _, at := range c.at {
		if k := len(at); k >= 2 && at[k-1].Sub(at[k-2]) >= d {
			backingOff++
		}
	}
	return backingOff == n
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
