package kubetest

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// serviceLabel carries the bulk Service index a pod belongs to, so ReplacePods keeps it.
const serviceLabel = "kubetest.podnet.dev/service"

// BulkPodIP is the IPv4 address of the n-th bulk pod (n ≥ 1), in 10.128.0.0/10: clear of
// ServiceCIDRs and of the addresses other tests use, unique for 4M pods.
func BulkPodIP(n uint64) string {
	return fmt.Sprintf("10.%d.%d.%d", 128+(n>>16)&63, (n>>8)&255, n&255)
}

// createBulkPod creates one pod and sets its status, as CreatePod does. svc < 0: no Service.
func (c *Cluster) createBulkPod(client kubernetes.Interface, ns, node string, svc int) (*corev1.Pod, error) {
	ctx := context.Background()
	n := c.bulkSeq.Add(1)
	created, err := client.CoreV1().Pods(ns).Create(ctx, bulkPod(ns, node, svc, n), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %d in %s: %w", n, ns, err)
	}
	setBulkStatus(created, BulkPodIP(n))
	updated, err := client.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of pod %s/%s: %w", ns, created.Name, err)
	}
	return updated, nil
}

// serviceIndex is the bulk Service a bulk pod was created for, or -1.
func serviceIndex(p *corev1.Pod) int {
	if j, err := strconv.Atoi(p.Labels[serviceLabel]); err == nil {
		return j
	}
	return -1
}

// bulkPod is shaped like a Deployment's pod: a ReplicaSet owner, the usual labels and
// annotations, an application container (ports, env, resources, a probe) and a proxy
// sidecar. With what the API server adds (service-account volume, tolerations, managed
// fields, ~2.9 KB of them) and its status it is ~7.6 KB of JSON, within the 4-8 KB of
// real pods.
func bulkPod(ns, node string, svc int, n uint64) *corev1.Pod {
	app := fmt.Sprintf("app-%d", n)
	if svc >= 0 {
		app = bulkService(svc)
	}
	const hash = "7d9f8c6b5"
	labels := map[string]string{
		"app": app, "pod-template-hash": hash, serviceLabel: strconv.Itoa(svc),
		"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app + "-prod",
		"app.kubernetes.io/version": "1.42.0", "app.kubernetes.io/component": "backend",
		"team": "payments",
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s-%s-%06x", app, hash, n),
			Namespace: ns,
			Labels:    labels,
			Annotations: map[string]string{
				"kubectl.kubernetes.io/restartedAt": "2026-11-30T09:12:44Z",
				"prometheus.io/scrape":              "true", "prometheus.io/port": "9090",
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "ReplicaSet", Name: app + "-" + hash,
				UID: types.UID(fmt.Sprintf("0b6d3a52-6d1e-4c1b-9a8e-%012d", max(svc, 0))), Controller: new(true), BlockOwnerDeletion: new(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{appContainer(app), sidecarContainer()},
		},
	}
}

func appContainer(app string) corev1.Container {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 10}
	return corev1.Container{
		Name:  "app",
		Image: "registry.example.com/shop/" + app + ":1.42.0",
		Args:  []string{"--listen=:8080", "--metrics=:9090", "--log-level=info"},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
		Env: []corev1.EnvVar{
			{Name: "DATABASE_URL", Value: "postgres://db.shop.svc.cluster.local:5432/shop"},
			{Name: "CACHE_ADDR", Value: "redis.shop.svc.cluster.local:6379"},
		},
		Resources:      resources("250m", "256Mi", "1", "512Mi"),
		ReadinessProbe: probe,
	}
}

func sidecarContainer() corev1.Container {
	return corev1.Container{
		Name:      "proxy",
		Image:     "registry.example.com/mesh/proxy:1.24.3",
		Ports:     []corev1.ContainerPort{{Name: "proxy-admin", ContainerPort: 15000}},
		Resources: resources("100m", "128Mi", "500m", "256Mi"),
	}
}

func resources(cpuReq, memReq, cpuLim, memLim string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse(memReq)},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuLim), corev1.ResourceMemory: resource.MustParse(memLim)},
	}
}

// setBulkStatus fills in what a kubelet reports of a running, ready pod.
func setBulkStatus(p *corev1.Pod, ip string) {
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.QOSClass = corev1.PodQOSBurstable
	p.Status.HostIP = "192.168.0.1"
	p.Status.HostIPs = []corev1.HostIP{{IP: p.Status.HostIP}}
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.StartTime = &now
	for _, cond := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	for i, ctr := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, Ready: true, Started: new(true),
			ImageID:     ctr.Image + "@sha256:4c1f7c5e0d6b2a8f9e3d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f",
			ContainerID: fmt.Sprintf("containerd://%s%08x%02d", "9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e", uint32(now.UnixNano()), i),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
}

func bulkServiceObject(ns string, j int) *corev1.Service {
	name := bulkService(j)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"},
			Annotations: map[string]string{"prometheus.io/scrape": "true"},
		},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics")},
			},
		},
	}
}
