package kubetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BulkPods describes many pods shaped like a Deployment's (see bulkPod), created by CreatePods.
type BulkPods struct {
	Namespaces []string // pods (and BulkServices' Services) are spread over these; each must exist (Namespace)
	Pods       int
	Nodes      int // pod i runs on NodeName(i % Nodes); node names need no Node object
	// Services is how many BulkServices the pods are labelled for: pod i carries the
	// selector of Service i % Services, in that Service's namespace. 0: no Service.
	Services int
	Workers  int // concurrent requests; 0 means 32
}

// BulkServices describes many ClusterIP Services, created by CreateServices.
type BulkServices struct {
	Namespaces []string // Service j is in Namespaces[j % len]
	Services   int
	Workers    int // 0 means 32
}

// NodeName is the name of node i of a bulk cluster, counted from 0: "node-0001" first.
func NodeName(i int) string { return fmt.Sprintf("node-%04d", i+1) }

// bulkService is the name of bulk Service j, which BulkPods' pods select with app=<name>.
func bulkService(j int) string { return fmt.Sprintf("svc-%04d", j) }

// bulkWorkers is enough concurrency for etcd to batch its commits while staying well below
// kube-apiserver's default 200 mutating requests in flight, so no limit needs raising.
const bulkWorkers = 32

// CreatePods creates spec.Pods pods, each then set Running with its IPs through the status
// subresource as CreatePod does, and returns them in order.
func (c *Cluster) CreatePods(t testing.TB, spec BulkPods) []*corev1.Pod {
	t.Helper()
	client := c.bulkClient(t)
	pods := make([]*corev1.Pod, spec.Pods)
	c.inParallel(t, spec.Pods, spec.Workers, func(i int) error {
		svc := -1
		ns := spec.Namespaces[i%len(spec.Namespaces)]
		if spec.Services > 0 {
			svc = i % spec.Services
			ns = spec.Namespaces[svc%len(spec.Namespaces)]
		}
		p, err := c.createBulkPod(client, ns, NodeName(i%spec.Nodes), svc)
		pods[i] = p
		return err
	})
	return pods
}

// ReplacePods deletes every pod of pods whose index is a multiple of 1/fraction (the
// fraction, spread evenly) and creates a replacement on the same node, in the same
// namespace and Service, with a new name and IP: a rolling update, pod by pod. It
// returns pods with the replacements in place of the deleted ones, and how many it replaced.
func (c *Cluster) ReplacePods(t testing.TB, pods []*corev1.Pod, fraction float64, workers int) ([]*corev1.Pod, int) {
	t.Helper()
	if fraction <= 0 || fraction > 1 {
		t.Fatalf("kubetest: ReplacePods fraction %v, want (0, 1]", fraction)
	}
	var picked []int
	for i, step := 0.0, 1/fraction; int(i) < len(pods); i += step {
		picked = append(picked, int(i))
	}
	client := c.bulkClient(t)
	out := append([]*corev1.Pod(nil), pods...)
	c.inParallel(t, len(picked), workers, func(k int) error {
		old := pods[picked[k]]
		err := client.CoreV1().Pods(old.Namespace).Delete(context.Background(), old.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		if err != nil {
			return fmt.Errorf("delete pod %s/%s: %w", old.Namespace, old.Name, err)
		}
		p, err := c.createBulkPod(client, old.Namespace, old.Spec.NodeName, serviceIndex(old))
		out[picked[k]] = p
		return err
	})
	return out, len(picked)
}

// CreateServices creates spec.Services Services selecting BulkPods' pods and returns them,
// with their allocated ClusterIPs, in order.
func (c *Cluster) CreateServices(t testing.TB, spec BulkServices) []*corev1.Service {
	t.Helper()
	client := c.bulkClient(t)
	svcs := make([]*corev1.Service, spec.Services)
	c.inParallel(t, spec.Services, spec.Workers, func(j int) error {
		ns := spec.Namespaces[j%len(spec.Namespaces)]
		s, err := client.CoreV1().Services(ns).Create(context.Background(), bulkServiceObject(ns, j), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create service %s/%s: %w", ns, bulkService(j), err)
		}
		svcs[j] = s
		return nil
	})
	return svcs
}

// bulkClient is an admin client without client-go's default 5 requests/s limit, speaking
// protobuf as kubelets and controllers do: JSON would make the API server, not etcd, the
// bottleneck of a bulk load on two cores.
func (c *Cluster) bulkClient(t testing.TB) kubernetes.Interface {
	t.Helper()
	cfg := c.AdminConfig()
	cfg.QPS = -1
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: bulk client: %v", err)
	}
	return client
}

// inParallel runs do(0..n-1) on a bounded pool of workers and fails the test with the first
// error, once every worker has stopped (t.Fatal must not be called from other goroutines).
func (c *Cluster) inParallel(t testing.TB, n, workers int, do func(i int) error) {
	t.Helper()
	if workers <= 0 {
		workers = bulkWorkers
	}
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop handing out work
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatalf("kubetest: %v", first)
	}
}
