package k8smeta

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// rbacManifest is the deployment's RBAC: the tests run the Store with exactly its rights.
const rbacManifest = "../../../examples/rbac.yaml"

type rbacObjects struct {
	account *corev1.ServiceAccount
	role    *rbacv1.ClusterRole
	binding *rbacv1.ClusterRoleBinding
}

func loadRBAC(t *testing.T) rbacObjects {
	t.Helper()
	f, err := os.Open(rbacManifest)
	require.NoError(t, err)
	defer f.Close()
	var objs rbacObjects
	docs := yaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		require.NoError(t, err)
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			objs.account = o
		case *rbacv1.ClusterRole:
			objs.role = o
		case *rbacv1.ClusterRoleBinding:
			objs.binding = o
		default:
			t.Fatalf("%s: unexpected %T", rbacManifest, obj)
		}
	}
	require.NotNil(t, objs.account, "ServiceAccount in %s", rbacManifest)
	require.NotNil(t, objs.role, "ClusterRole in %s", rbacManifest)
	require.NotNil(t, objs.binding, "ClusterRoleBinding in %s", rbacManifest)
	return objs
}

// applyRBAC creates the account's namespace and the objects, and returns the kubeconfig
// path of a token for the account: the same auth path a user outside the cluster takes.
func applyRBAC(t *testing.T, c *kubetest.Cluster, objs rbacObjects) string {
	t.Helper()
	ctx := context.Background()
	ns := objs.account.Namespace
	if _, err := c.Admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		c.Namespace(t, ns)
	}
	_, err := c.Admin.RbacV1().ClusterRoles().Create(ctx, objs.role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.Admin.RbacV1().ClusterRoleBindings().Create(ctx, objs.binding, metav1.CreateOptions{})
	require.NoError(t, err)
	token := c.ServiceAccountToken(t, ns, objs.account.Name)
	return c.Kubeconfig(t, c.ConfigFor(token))
}

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
	s, err := NewStore(cfg, Options{NodeName: node, SyncTimeout: syncTimeout, OnStatus: status.report})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s, status, s.Start()
}
