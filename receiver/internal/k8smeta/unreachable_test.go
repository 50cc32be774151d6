package k8smeta

import (
	"testing"
	"time"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
}

// Stop must not wait out client-go's retry backoff while the API server is down: it is
// part of the collector's shutdown. (With streaming watch-list, it waited up to 30 s.)
func TestStopIsPromptWhileAPIServerIsDown(t *testing.T) {
	s, _, _ := startStore(t, kubetest.UnreachableKubeconfig(t), "node-a", time.Second)
	time.Sleep(12 * time.Second) // retries back off to several seconds by now
	start := time.Now()
	s.Stop()
	assert.Less(t, time.Since(start), 3*time.Second)
}
