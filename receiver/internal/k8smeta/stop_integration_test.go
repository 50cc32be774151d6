package k8smeta

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/podnet/podnet/internal/kubetest"
)

// Stop leaves nothing behind while the API server is still up (a collector reload): no
// informer goroutine and no connection of the Store's, whose read loop would be one.
func TestStopLeavesNoConnection(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	c.Namespace(t, "shop")
	c.CreatePod(t, kubetest.Pod{Namespace: "shop", Name: "web", Node: "node-a", IPs: []string{"10.244.1.10"}})
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubeconfig}.RESTConfig()
	require.NoError(t, err)
	for range 3 {
		before := goleak.IgnoreCurrent()
		s, err := NewStore(cfg, Options{NodeName: "node-a", SyncTimeout: 30 * time.Second})
		require.NoError(t, err)
		require.True(t, s.Start())
		s.Stop()
		goleak.VerifyNone(t, before)
	}
}
