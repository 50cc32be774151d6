package kubetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// stopGrace is how long cleanup lets a server shut down cleanly before killing it.
const stopGrace = 10 * time.Second

// Cluster is an etcd + kube-apiserver pair owned by one test.
type Cluster struct {
	dir   string
	host  string
	certs pki
	admin string // bearer token of a system:masters user

	etcd      *process
	apiserver *process

	bulkSeq atomic.Uint64 // numbers bulk pods, for unique names and IPs (see BulkPodIP)

	// Admin is a clientset that bypasses RBAC, for setting up test objects.
	Admin kubernetes.Interface
}

// Start runs etcd and kube-apiserver and waits until the API server is ready. Both are
// stopped by t.Cleanup. It skips the test (fails it when CI is set) if the binaries are
// missing: build them with tools/kube/build.sh.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := findBinaries(t)
	c := &Cluster{dir: t.TempDir(), admin: rand.Text()}
	var err error
	if c.certs, err = writePKI(c.dir); err != nil {
		t.Fatalf("kubetest: certificates: %v", err)
	}
	var etcdURL string
	if c.etcd, etcdURL, err = startEtcd(bin.etcd, c.dir); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() { c.etcd.stop(stopGrace) })

	port, err := freePort()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	c.host = fmt.Sprintf("https://127.0.0.1:%d", port)
	if c.apiserver, err = apiserverProcess(bin.apiserver, c.dir, etcdURL, port, c.certs, c.admin); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	// Registered after etcd's, so it runs first: the API server shuts down while etcd is up.
	t.Cleanup(func() { c.apiserver.stop(stopGrace) })
	c.Restart(t)

	httpClient, err := rest.HTTPClientFor(c.AdminConfig())
	if err != nil {
		t.Fatalf("kubetest: admin client: %v", err)
	}
	// Idle keep-alive connections would otherwise outlive the test (goleak).
	t.Cleanup(httpClient.CloseIdleConnections)
	if c.Admin, err = kubernetes.NewForConfigAndClient(c.AdminConfig(), httpClient); err != nil {
		t.Fatalf("kubetest: admin client: %v", err)
	}
	return c
}

// Stop kills the API server, as a crash or a network partition would end it, to test
// clients during an outage; etcd keeps the data for Restart. (A graceful shutdown would
// wait ~10 s for open watches.)
func (c *Cluster) Stop() { c.apiserver.stop(0) }

// Restart starts the API server on the same address and waits until it is ready.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	start := time.Now()
	if err := c.apiserver.start(); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	if err := waitAPIServer(c.apiserver, c.host, c.certs.caPEM, c.admin); err != nil {
		c.apiserver.stop(0)
		t.Fatalf("kubetest: %v", err)
	}
	t.Logf("kubetest: kube-apiserver ready at %s in %v", c.host, time.Since(start).Round(time.Millisecond))
}

// AdminConfig returns a client configuration that bypasses RBAC.
func (c *Cluster) AdminConfig() *rest.Config { return c.ConfigFor(c.admin) }

// ConfigFor returns a client configuration that authenticates with a bearer token.
func (c *Cluster) ConfigFor(token string) *rest.Config {
	return &rest.Config{
		Host:            c.host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.certs.caPEM},
	}
}

// ServiceAccountToken creates the ServiceAccount if needed and returns a token for it from
// the TokenRequest API: the identity an in-cluster collector runs as, subject to RBAC.
func (c *Cluster) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	_, err := c.Admin.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create service account %s/%s: %v", namespace, name, err)
	}
	tr, err := c.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}
