package k8smeta

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod is what the receiver knows about a pod running on its own node.
type Pod struct {
	Name, Namespace, UID string
	HostNetwork          bool
	// Containers maps container IDs, without the "containerd://" style runtime prefix (as
	// they appear in cgroup paths), to container names; init and ephemeral containers
	// included, since they open connections too.
	Containers map[string]string
}

// transformLocalPod keeps what PodByUID and ContainerName answer from. The informer stores
// the returned object instead of the full pod, whose spec and managed fields are most of
// its size. It is idempotent, as the informer requires.
func transformLocalPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: strippedMeta(&pod.ObjectMeta),
		Spec:       corev1.PodSpec{HostNetwork: pod.Spec.HostNetwork},
	}
	statuses := [][]corev1.ContainerStatus{
		pod.Status.InitContainerStatuses,
		pod.Status.ContainerStatuses,
		pod.Status.EphemeralContainerStatuses,
	}
	n := 0
	for _, s := range statuses {
		n += len(s)
	}
	// All kinds go into ContainerStatuses: only the ID→name pairs matter here.
	out.Status.ContainerStatuses = make([]corev1.ContainerStatus, 0, n)
	for _, s := range statuses {
		for _, c := range s {
			if id := bareContainerID(c.ContainerID); id != "" {
				out.Status.ContainerStatuses = append(out.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, ContainerID: id})
			}
		}
	}
	return out, nil
}

// strippedMeta keeps the identity, the resource version (the informer compares it on
// updates) and whether the object is being deleted (a terminating pod may share its IP
// with its successor).
func strippedMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
	}
}

// bareContainerID drops the runtime prefix of a status containerID ("containerd://abc" →
// "abc"): cgroup paths, where the receiver finds container IDs, carry the bare ID.
func bareContainerID(id string) string {
	if _, bare, ok := strings.Cut(id, "://"); ok {
		return bare
	}
	return id
}

func podFromObject(p *corev1.Pod) Pod {
	out := Pod{
		Name:        p.Name,
		Namespace:   p.Namespace,
		UID:         string(p.UID),
		HostNetwork: p.Spec.HostNetwork,
		Containers:  make(map[string]string, len(p.Status.ContainerStatuses)),
	}
	for _, c := range p.Status.ContainerStatuses {
		out.Containers[c.ContainerID] = c.Name
	}
	return out
}
