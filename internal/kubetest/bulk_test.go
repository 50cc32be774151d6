package kubetest

import (
	"context"
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBulk checks that bulk pods land where BulkPods says, Running with unique IPs, sized like
// real pods, and that ReplacePods swaps the chosen fraction for new pods on the same nodes.
func TestBulk(t *testing.T) {
	c := Start(t)
	for _, ns := range []string{"shop", "pay"} {
		c.Namespace(t, ns)
	}
	spec := BulkPods{Namespaces: []string{"shop", "pay"}, Pods: 300, Nodes: 30, Services: 20}
	svcs := c.CreateServices(t, BulkServices{Namespaces: spec.Namespaces, Services: spec.Services})
	pods := c.CreatePods(t, spec)

	ips := map[string]bool{}
	for i, p := range pods {
		if p.Status.Phase != "Running" || p.Status.PodIP == "" || ips[p.Status.PodIP] {
			t.Fatalf("pod %d: phase %q, IP %q (seen before: %v)", i, p.Status.Phase, p.Status.PodIP, ips[p.Status.PodIP])
		}
		ips[p.Status.PodIP] = true
		if want := NodeName(i % spec.Nodes); p.Spec.NodeName != want {
			t.Fatalf("pod %d on %q, want %q", i, p.Spec.NodeName, want)
		}
		if svc := svcs[i%spec.Services]; p.Namespace != svc.Namespace || p.Labels["app"] != svc.Spec.Selector["app"] {
			t.Fatalf("pod %s/%s is not selected by service %s/%s", p.Namespace, p.Name, svc.Namespace, svc.Name)
		}
	}
	raw, err := json.Marshal(pods[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a bulk pod is %d bytes of JSON", len(raw))
	if len(raw) < 4000 || len(raw) > 8000 {
		t.Errorf("bulk pod is %d bytes of JSON, want a real pod's 4-8 KB", len(raw))
	}

	replaced, n := c.ReplacePods(t, pods, 0.1, 0)
	if n != 30 {
		t.Fatalf("replaced %d pods, want 30", n)
	}
	list, err := c.Admin.CoreV1().Pods(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(pods) {
		t.Fatalf("%d pods after replacing, want %d", len(list.Items), len(pods))
	}
	for i := range pods {
		changed := replaced[i].UID != pods[i].UID
		if changed != (i%10 == 0) || replaced[i].Spec.NodeName != pods[i].Spec.NodeName || ips[replaced[i].Status.PodIP] != !changed {
			t.Fatalf("pod %d: replaced %v (want %v), node %s→%s, IP %s→%s", i, changed, i%10 == 0,
				pods[i].Spec.NodeName, replaced[i].Spec.NodeName, pods[i].Status.PodIP, replaced[i].Status.PodIP)
		}
	}
}
