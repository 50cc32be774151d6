package k8smeta

import (
	"slices"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Pod is what the receiver knows about a pod running on its own node.
type Pod struct {
	Name, Namespace, UID string
	// Workload is the pod's controller's name, as workloadOf derives it; the pod's name when it
	// has none.
	Workload    string
	HostNetwork bool
	// Gone: deleted from the API server, and still named for its sockets' last events
	// (gonePods).
	Gone bool
	// Containers maps container IDs, without the "containerd://" style runtime prefix (as
	// they appear in cgroup paths), to container names; init and ephemeral containers
	// included, since they open connections too.
	Containers map[string]string
}

// localPod is what the node's pod informer stores per pod, instead of the whole object.
type localPod struct {
	metav1.ObjectMeta
	hostNetwork bool
	containers  []container
	// mirrorOf is a static pod's UID inside the kubelet, for its mirror Pod in the API (see
	// mirrorOf); "" for any other pod.
	mirrorOf string
	workload unique.Handle[string]  // see workloadOf
	host     unique.Handle[hostIPs] // the node's addresses (NodeAddrs)
}

type container struct{ id, name string }

// GetObjectKind and DeepCopyObject make localPod the runtime.Object an informer store
// holds; client-go does not copy stored objects, but a copy must share no slices.
func (p *localPod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (p *localPod) DeepCopyObject() runtime.Object {
	return &localPod{
		ObjectMeta: *p.DeepCopy(), hostNetwork: p.hostNetwork, containers: slices.Clone(p.containers), mirrorOf: p.mirrorOf,
		workload: p.workload, host: p.host,
	}
}

// transformLocalPod keeps what PodByUID and ContainerName answer from. It is idempotent,
// as the informer requires: anything but a *corev1.Pod passes through.
func transformLocalPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &localPod{
		ObjectMeta: strippedMeta(&pod.ObjectMeta), hostNetwork: pod.Spec.HostNetwork, mirrorOf: mirrorOf(pod),
		workload: workloadOf(pod), host: hostIPsOf(pod),
	}
	for _, statuses := range [][]corev1.ContainerStatus{
		pod.Status.InitContainerStatuses,
		pod.Status.ContainerStatuses,
		pod.Status.EphemeralContainerStatuses,
	} {
		for _, c := range statuses {
			if id := bareContainerID(c.ContainerID); id != "" {
				out.containers = append(out.containers, container{id: id, name: c.Name})
			}
			// The instance before a restart: its sockets may still close, and its connections be
			// counted at a drain, after the status names the next one (found by an independent
			// check: a crash-looping container's first instance's series had no container name).
			if last := c.LastTerminationState.Terminated; last != nil {
				if id := bareContainerID(last.ContainerID); id != "" {
					out.containers = append(out.containers, container{id: id, name: c.Name})
				}
			}
		}
	}
	return out, nil
}

// mirrorAnnotation marks a mirror pod: the API's copy of a static pod, one the kubelet runs
// from a manifest on its node (often the control plane's: kube-apiserver, etcd). Its value is
// the static pod's UID inside the kubelet, the hash of its manifest (also its
// kubernetes.io/config.hash annotation), which is what names the pod's cgroups; the API gives
// the mirror pod a metadata.uid of its own.
const mirrorAnnotation = "kubernetes.io/config.mirror"

// mirrorOf is the UID by which the kubelet runs pod, when that is not its metadata.uid: a
// static pod's, from its mirror pod's annotation. A value longer than any UID a cgroup path
// carries (36 characters: procscan's validPodUID) is dropped, so that an annotation set by hand
// costs no memory; one a cgroup path cannot carry is never looked up.
func mirrorOf(pod *corev1.Pod) string {
	uid := pod.Annotations[mirrorAnnotation]
	if uid == string(pod.UID) || len(uid) > maxPodUIDLen {
		return ""
	}
	return uid
}

const maxPodUIDLen = 36

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
		CreationTimestamp: m.CreationTimestamp, // when an address owner began to hold its address (ip_handovers.go)
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

func (p *localPod) pod(gone bool) Pod {
	out := Pod{
		Gone:        gone,
		Name:        p.Name,
		Namespace:   p.Namespace,
		UID:         string(p.UID),
		Workload:    workloadName(p.workload),
		HostNetwork: p.hostNetwork,
		Containers:  make(map[string]string, len(p.containers)),
	}
	for _, c := range p.containers {
		out.Containers[c.id] = c.name
	}
	return out
}
