package podnetreceiver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// The collector makes one podnet instance per signal of the pipelines it feeds, each with its
// own component status, while one receiver runs for both. An API server outage was reported
// to the first instance started alone: the other stayed StatusOK (found by an independent
// check). Every instance hears it, also one started after it was said.
func TestEveryPipelineInstanceHearsTheSharedReceiversStatus(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	cfg.NodeName = node
	cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: awayAPIServer(t)}
	f := NewFactory()
	set := receivertest.NewNopSettings(metadata.Type)
	lr, err := f.CreateLogs(context.Background(), set, cfg, new(consumertest.LogsSink))
	require.NoError(t, err)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	logsHost, metricsHost := &statusHost{}, &statusHost{}

	require.NoError(t, lr.Start(context.Background(), logsHost))
	t.Cleanup(func() { require.NoError(t, lr.Shutdown(context.Background())) })
	require.Eventually(t, func() bool { return logsHost.saw(componentstatus.StatusRecoverableError) }, 30*time.Second, 50*time.Millisecond,
		"the API server's absence is reported")
	require.NoError(t, mr.Start(context.Background(), metricsHost))
	require.True(t, metricsHost.saw(componentstatus.StatusRecoverableError),
		"the metrics pipeline's instance, started after the report, hears it too: %v", metricsHost.events)
	require.NoError(t, mr.Shutdown(context.Background()))
}

// awayAPIServer is a kubeconfig naming an API server on a loopback port nothing listens on.
func awayAPIServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kc, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, addr), 0o600))
	return kc
}
