package kubetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCleanupStopsServers: objects are accepted as the helpers build them, Stop/Restart
// keep the data, and nothing runs once the test that started the cluster is over.
func TestCleanupStopsServers(t *testing.T) {
	var c *Cluster
	t.Run("cluster", func(t *testing.T) {
		c = Start(t)
		c.Namespace(t, "ns")
		c.CreatePod(t, Pod{Namespace: "ns", Name: "host", Node: "n", IPs: []string{"192.0.2.1"}, HostNetwork: true})
		svc := c.CreateService(t, Service{Namespace: "ns", Name: "s", DualStack: true})
		assert.Len(t, ClusterIPs(svc), 2)

		c.Stop()
		c.Restart(t)
		pod, err := c.Admin.CoreV1().Pods("ns").Get(context.Background(), "host", metav1.GetOptions{})
		require.NoError(t, err, "data survives an API server restart")
		assert.Equal(t, "192.0.2.1", pod.Status.PodIP)
	})
	if c == nil {
		t.Skip("no cluster started (see the subtest)")
	}
	for _, p := range []*process{c.etcd, c.apiserver} {
		assert.True(t, p.exited(), "%s still running", p.name)
	}
}

// The harness itself must not leave connection or process-waiting goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
