package k8smeta

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fullPod is a pod as an API server returns it for a typical Deployment replica: labels,
// annotations, owner, managed fields, two containers with env and mounts, and statuses.
// Most of it is what the transforms must drop.
func fullPod(i int) *corev1.Pod {
	name := fmt.Sprintf("web-7d9f8b6c5d-%05d", i)
	now := metav1.Now()
	container := func(n string) corev1.Container {
		return corev1.Container{
			Name:    n,
			Image:   "registry.example.com/team/" + n + ":1.2.3",
			Command: []string{"/bin/" + n, "--config=/etc/" + n + "/config.yaml"},
			Env: []corev1.EnvVar{
				{Name: "LOG_LEVEL", Value: "info"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
			Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/" + n}, {Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
		}
	}
	status := func(n string, id int) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name:        n,
			Image:       "registry.example.com/team/" + n + ":1.2.3",
			ImageID:     "registry.example.com/team/" + n + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ContainerID: fmt.Sprintf("containerd://%064x", i*16+id),
			Ready:       true,
			Started:     new(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}
	}
	ip := fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         "shop",
			UID:               types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)),
			ResourceVersion:   strconv.Itoa(100000 + i),
			CreationTimestamp: now,
			Labels:            map[string]string{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8b6c5d"},
			Annotations:       map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5d", UID: "rs-uid", Controller: new(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(make([]byte, 1500)))},
				{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(make([]byte, 1200))), Subresource: "status"},
			},
		},
		Spec: corev1.PodSpec{
			NodeName:           fmt.Sprintf("node-%d", i%100),
			ServiceAccountName: "web",
			Containers:         []corev1.Container{container("web"), container("sidecar")},
			InitContainers:     []corev1.Container{container("init")},
			Volumes:            []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}}},
			Tolerations:        []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
		},
		Status: corev1.PodStatus{
			Phase:                 corev1.PodRunning,
			Conditions:            []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
			HostIP:                "192.0.2.1",
			HostIPs:               []corev1.HostIP{{IP: "192.0.2.1"}},
			PodIP:                 ip,
			PodIPs:                []corev1.PodIP{{IP: ip}},
			StartTime:             &now,
			QOSClass:              corev1.PodQOSBurstable,
			InitContainerStatuses: []corev1.ContainerStatus{status("init", 0)},
			ContainerStatuses:     []corev1.ContainerStatus{status("web", 1), status("sidecar", 2)},
		},
	}
}

// fullEndpointSlice is a slice as the EndpointSlice controller writes it for a Service of
// three pods: labels, owner, managed fields, and per endpoint its address, conditions, node,
// zone, pod reference and hints. All but the Service name and the ready count must go.
func fullEndpointSlice(i int) *discoveryv1.EndpointSlice {
	now := metav1.Now()
	svc := fmt.Sprintf("svc-%05d", i)
	endpoint := func(n int, ready bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.%d", i/250, n)},
			Conditions: discoveryv1.EndpointConditions{Ready: new(ready), Serving: new(ready), Terminating: new(false)},
			NodeName:   new(fmt.Sprintf("node-%d", n)),
			Zone:       new("zone-a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: fmt.Sprintf("%s-7d9f8b6c5d-%05d", svc, n), UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", n))},
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}},
		}
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:              svc + "-x7k2p",
			GenerateName:      svc + "-",
			Namespace:         "shop",
			UID:               types.UID(fmt.Sprintf("00000000-0000-4000-9000-%012d", i)),
			ResourceVersion:   strconv.Itoa(200000 + i),
			CreationTimestamp: now,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc,
				discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
				"app.kubernetes.io/name":     svc,
			},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc, UID: "svc-uid", Controller: new(true), BlockOwnerDeletion: new(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "discovery.k8s.io/v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(make([]byte, 1200)))},
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{endpoint(1, true), endpoint(2, true), endpoint(3, false)},
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
	}
}
