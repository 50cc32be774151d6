package k8smeta

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// loadCluster is a large cluster written straight through the API: pods spread over nodes,
// half of them behind Services whose EndpointSlices list them as the EndpointSlice controller
// would (with targetRef), the other half behind none.
type loadCluster struct {
	api                   kubernetes.Interface
	namespace             string
	pods, nodes, services int
	generation            []int       // per pod index: how often it was replaced
	uids                  []types.UID // per pod index: the current pod's
}

func newLoadCluster(api kubernetes.Interface, pods, nodes, services int) *loadCluster {
	return &loadCluster{
		api: api, namespace: "load", pods: pods, nodes: nodes, services: services,
		generation: make([]int, pods), uids: make([]types.UID, pods),
	}
}

// behindService says which Service pod i is behind: even pods are behind Service
// (i/2)%services, odd pods behind none.
func (lc *loadCluster) behindService(i int) (int, bool) { return (i / 2) % lc.services, i%2 == 0 }

func (lc *loadCluster) podName(i int) string {
	return fmt.Sprintf("p%05d-%d", i, lc.generation[i])
}

// podIP gives each pod and generation its own address in 10.128.0.0/9.
func (lc *loadCluster) podIP(i int) netip.Addr {
	n := uint32(i)<<4 | uint32(lc.generation[i]&15)
	return netip.AddrFrom4([4]byte{10, 128 | byte(n>>16&127), byte(n >> 8), byte(n)})
}

// pod is shaped like a Deployment's pod after admission: labels, owner, a container with
// ports, resources and env; the API server adds the token volume and tolerations.
func (lc *loadCluster) pod(i int) *corev1.Pod {
	app := fmt.Sprintf("app%04d", i/2%lc.services)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: lc.podName(i), Namespace: lc.namespace,
			Labels: map[string]string{"app": app, "pod-template-hash": "5d4f8c7b9"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-5d4f8c7b9",
				UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i/2%lc.services)), Controller: new(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName: fmt.Sprintf("node-%d", i%lc.nodes),
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.invalid/" + app + ":1.2.3",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "APP", Value: app}, {Name: "LOG_LEVEL", Value: "info"}},
			}},
		},
	}
}

// createPod creates pod i and sets its status as a kubelet would: Running, Ready, its IP.
func (lc *loadCluster) createPod(ctx context.Context, i int) (*corev1.Pod, error) {
	created, err := lc.api.CoreV1().Pods(lc.namespace).Create(ctx, lc.pod(i), metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	lc.uids[i] = created.UID
	now := metav1.Now()
	ip := lc.podIP(i).String()
	created.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: "192.0.2.1", StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "main", Ready: true, Image: "registry.invalid/main:1.2.3", ContainerID: fmt.Sprintf("containerd://%064x", i),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	return lc.api.CoreV1().Pods(lc.namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
}

// populate creates the namespace, the Services, the pods and one EndpointSlice per Service.
func (lc *loadCluster) populate(ctx context.Context) error {
	if _, err := lc.api.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: lc.namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: lc.namespace}}
	if _, err := lc.api.CoreV1().ServiceAccounts(lc.namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := parallel(ctx, lc.services, func(ctx context.Context, s int) error {
		_, err := lc.api.CoreV1().Services(lc.namespace).Create(ctx, lc.service(s), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := parallel(ctx, lc.pods, func(ctx context.Context, i int) error {
		_, err := lc.createPod(ctx, i)
		return err
	}); err != nil {
		return err
	}
	return parallel(ctx, lc.services, func(ctx context.Context, s int) error {
		_, err := lc.api.DiscoveryV1().EndpointSlices(lc.namespace).Create(ctx, lc.slice(s), metav1.CreateOptions{})
		return err
	})
}

// replace deletes pod i and creates its successor (a new name and IP), then, if it is behind
// a Service, rewrites that Service's slice once, as the EndpointSlice controller would after the
// new pod turned ready (the controller also writes while the old one terminates: not here).
// That is 3 pod watch events and, for half the pods, 1 EndpointSlice event. Not concurrent.
func (lc *loadCluster) replace(ctx context.Context, i int) error {
	grace := int64(0)
	if err := lc.api.CoreV1().Pods(lc.namespace).Delete(ctx, lc.podName(i), metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		return err
	}
	lc.generation[i]++
	if _, err := lc.createPod(ctx, i); err != nil {
		return err
	}
	s, ok := lc.behindService(i)
	if !ok {
		return nil
	}
	slices := lc.api.DiscoveryV1().EndpointSlices(lc.namespace)
	old, err := slices.Get(ctx, lc.slice(s).Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	next := lc.slice(s)
	next.ResourceVersion = old.ResourceVersion
	_, err = slices.Update(ctx, next, metav1.UpdateOptions{})
	return err
}

func (lc *loadCluster) service(s int) *corev1.Service {
	app := fmt.Sprintf("app%04d", s)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: lc.namespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// slice is Service s's EndpointSlice listing its pods.
func (lc *loadCluster) slice(s int) *discoveryv1.EndpointSlice {
	app := fmt.Sprintf("app%04d", s)
	out := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: app + "-abcde", Namespace: lc.namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: app, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
	}
	for i := 0; i < lc.pods; i++ {
		if svc, ok := lc.behindService(i); !ok || svc != s {
			continue
		}
		node := fmt.Sprintf("node-%d", i%lc.nodes)
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{lc.podIP(i).String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: lc.namespace, Name: lc.podName(i), UID: lc.uids[i]},
		})
	}
	return out
}

// parallel runs f for 0..n-1 on 16 workers (the API server's default client QPS limits do not
// apply: the admin clientset is built without a rate limiter) and returns the first error.
func parallel(ctx context.Context, n int, f func(context.Context, int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
