package podnetreceiver

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// Settings that only the node can check fail Start with what to fix, and leave nothing
// running (the package's goleak check and the program-id checks of other tests).
func TestStartFailsClearly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*Config)
		want      string
		// afterProc: Start gets this far only once it has read every process's namespace
		// links in the node's /proc, which needs root (CAP_SYS_PTRACE).
		afterProc bool
	}{
		{
			"missing proc root", func(c *Config) { c.ProcRoot = filepath.Join(t.TempDir(), "hostfs", "proc") },
			"mount the host's / (hostPath) at /hostfs", false,
		},
		{"bad kubeconfig", func(c *Config) {
			c.NodeName = "node-a"
			c.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: filepath.Join(t.TempDir(), "missing")}
		}, "kubernetes (auth_type kubeConfig)", true},
		{"service account outside a cluster", func(c *Config) {
			c.NodeName = "node-a"
			c.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeServiceAccount}
		}, "kubernetes (auth_type serviceAccount)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.afterProc {
				netnstest.RequireRoot(t)
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			cfg := NewDefaultConfig()
			tc.configure(cfg)
			r, err := NewFactory().CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.LogsSink))
			require.NoError(t, err)
			assert.ErrorContains(t, r.Start(context.Background(), componenttest.NewNopHost()), tc.want)
			assert.NoError(t, r.Shutdown(context.Background()), "Shutdown after a failed Start is safe")
		})
	}
}
