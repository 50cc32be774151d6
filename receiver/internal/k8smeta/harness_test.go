package k8smeta

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
)

// rbacManifest is the deployment's RBAC: the tests run the Store with exactly its rights.
const rbacManifest = "../../../examples/rbac.yaml"

// loadRBAC reads examples/rbac.yaml, for tests that apply it as is or altered.
func loadRBAC(t *testing.T) kubetest.RBAC { return kubetest.LoadRBAC(t, rbacManifest) }

// statusLog collects what the Store reports through OnStatus.
type statusLog chan error

func (s statusLog) report(err error) { s <- err }

func (s statusLog) next(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-s:
		return err
	case <-time.After(timeout):
		t.Fatalf("no status report within %v", timeout)
		return nil
	}
}

// startStore runs a Store as the podnet account with the given kubeconfig; Stop is a cleanup.
func startStore(t *testing.T, kubeconfig, node string, syncTimeout time.Duration) (*Store, statusLog, bool) {
	t.Helper()
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubeconfig}.RESTConfig()
	require.NoError(t, err)
	status := make(statusLog, 64)
	s, err := NewStore(cfg, Options{
		NodeName: node, SyncTimeout: syncTimeout, OnStatus: status.report,
		OnOptionalDenied: func(err error) { t.Logf("optional metadata denied: %v", err) },
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s, status, s.Start()
}
