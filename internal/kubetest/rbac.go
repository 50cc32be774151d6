package kubetest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// RBAC is a deployment's identity: a ServiceAccount with a ClusterRole bound to it.
type RBAC struct {
	Account *corev1.ServiceAccount
	Role    *rbacv1.ClusterRole
	Binding *rbacv1.ClusterRoleBinding
}

// LoadRBAC reads a manifest holding exactly a ServiceAccount, a ClusterRole and a
// ClusterRoleBinding (examples/rbac.yaml), so tests run with the rights users deploy.
func LoadRBAC(t testing.TB, path string) RBAC {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	defer f.Close()
	var r RBAC
	docs := yaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubetest: %s: %v", path, err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("kubetest: %s: %v", path, err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			r.Account = o
		case *rbacv1.ClusterRole:
			r.Role = o
		case *rbacv1.ClusterRoleBinding:
			r.Binding = o
		default:
			t.Fatalf("kubetest: %s: unexpected %T", path, obj)
		}
	}
	if r.Account == nil || r.Role == nil || r.Binding == nil {
		t.Fatalf("kubetest: %s needs a ServiceAccount, a ClusterRole and a ClusterRoleBinding", path)
	}
	return r
}

// Apply creates the objects (and the account's namespace) and returns the path of a
// kubeconfig with a token for the account: the same auth path a user outside the cluster takes.
func (r RBAC) Apply(t testing.TB, c *Cluster) string {
	t.Helper()
	ctx := context.Background()
	ns := r.Account.Namespace
	if _, err := c.Admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		c.Namespace(t, ns)
	}
	if _, err := c.Admin.RbacV1().ClusterRoles().Create(ctx, r.Role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create ClusterRole: %v", err)
	}
	if _, err := c.Admin.RbacV1().ClusterRoleBindings().Create(ctx, r.Binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create ClusterRoleBinding: %v", err)
	}
	token := c.ServiceAccountToken(t, ns, r.Account.Name)
	return c.Kubeconfig(t, c.ConfigFor(token))
}

// ApplyRBAC loads the manifest at path and applies it.
func ApplyRBAC(t testing.TB, c *Cluster, path string) string {
	t.Helper()
	return LoadRBAC(t, path).Apply(t, c)
}
