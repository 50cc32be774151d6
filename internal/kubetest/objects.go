package kubetest

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Namespace creates a namespace and its default ServiceAccount, which the ServiceAccount
// admission plugin requires of every pod and which no controller-manager creates here.
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := c.Admin.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create default service account in %s: %v", name, err)
	}
}

// Pod describes a pod as a kubelet would have reported it.
type Pod struct {
	Namespace, Name string
	Node            string            // spec.nodeName: binds the pod without a scheduler
	IPs             []string          // status.podIPs; the first is status.podIP
	Containers      map[string]string // container name → status containerID ("containerd://…"); empty: one "main" without ID
	HostNetwork     bool              // IPs are then the node's and also its hostIPs
	Annotations     map[string]string // a mirror pod's kubernetes.io/config.mirror, say
	Labels          map[string]string // a ReplicaSet's pod-template-hash, say
	// Controller is the pod's controller ownerReference (its UID made up: nothing here
	// collects orphans); nil for a bare pod.
	Controller *metav1.OwnerReference
}

// CreatePod creates the pod, then writes its status (Running, IPs, container IDs) through
// the status subresource, the way a kubelet does.
func (c *Cluster) CreatePod(t testing.TB, p Pod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	names := slices.Sorted(maps.Keys(p.Containers))
	if len(names) == 0 {
		names = []string{"main"} // a pod needs a container
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Annotations: p.Annotations, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: p.Node, HostNetwork: p.HostNetwork},
	}
	for _, name := range names {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name, Image: "registry.invalid/" + name})
	}
	if p.Controller != nil {
		owner := *p.Controller
		owner.Controller = new(true)
		if owner.UID == "" {
			owner.UID = "00000000-0000-4000-8000-00000000c0de"
		}
		pod.OwnerReferences = []metav1.OwnerReference{owner}
	}
	created, err := c.Admin.CoreV1().Pods(p.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create pod %s/%s: %v", p.Namespace, p.Name, err)
	}

	created.Status.Phase = corev1.PodRunning
	for i, ip := range p.IPs {
		if i == 0 {
			created.Status.PodIP = ip
		}
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip})
		if p.HostNetwork {
			if i == 0 {
				created.Status.HostIP = ip
			}
			created.Status.HostIPs = append(created.Status.HostIPs, corev1.HostIP{IP: ip})
		}
	}
	started := metav1.Now()
	for _, name := range names {
		created.Status.ContainerStatuses = append(created.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:        name,
			Image:       "registry.invalid/" + name,
			ContainerID: p.Containers[name],
			Ready:       true,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		})
	}
	updated, err := c.Admin.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("kubetest: set status of pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	return updated
}

// DeletePod deletes a pod at once. A pod bound to a node otherwise only gets a deletion
// timestamp and waits for a kubelet, which does not exist here, to confirm.
func (c *Cluster) DeletePod(t testing.TB, namespace, name string) {
	t.Helper()
	err := c.Admin.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil {
		t.Fatalf("kubetest: delete pod %s/%s: %v", namespace, name, err)
	}
}

// TerminatePod deletes a pod with its grace period, as kubectl delete does: bound to a node, it
// is left terminating (a deletion timestamp) until DeletePod, the kubelet's confirmation.
func (c *Cluster) TerminatePod(t testing.TB, namespace, name string) {
	t.Helper()
	if err := c.Admin.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("kubetest: terminate pod %s/%s: %v", namespace, name, err)
	}
}

// Service describes a ClusterIP Service.
type Service struct {
	Namespace, Name string
	ClusterIPs      []string // empty: allocated from ServiceCIDRs; ["None"]: headless
	DualStack       bool     // ask for one ClusterIP per family (PreferDualStack)
}

// CreateService creates the Service and returns it with its allocated ClusterIPs.
func (c *Cluster) CreateService(t testing.TB, s Service) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace},
		Spec: corev1.ServiceSpec{
			ClusterIPs: s.ClusterIPs,
			Selector:   map[string]string{"app": s.Name},
			Ports:      []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if len(s.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = s.ClusterIPs[0]
	}
	if s.DualStack {
		svc.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyPreferDualStack)
	}
	created, err := c.Admin.CoreV1().Services(s.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create service %s/%s: %v", s.Namespace, s.Name, err)
	}
	return created
}

// DeleteService deletes a Service; its ClusterIP is free for another.
func (c *Cluster) DeleteService(t testing.TB, namespace, name string) {
	t.Helper()
	if err := c.Admin.CoreV1().Services(namespace).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("kubetest: delete service %s/%s: %v", namespace, name, err)
	}
}

// ClusterIPs parses a Service's ClusterIPs, for tests that look them up.
func ClusterIPs(svc *corev1.Service) []netip.Addr {
	var addrs []netip.Addr
	for _, ip := range svc.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs
}
