package k8smeta

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// PeerKind says what a remote address belongs to.
type PeerKind uint8

const (
	PeerPod PeerKind = iota + 1
	PeerService
)

// Peer is the pod or Service behind a remote address.
type Peer struct {
	Kind                 PeerKind
	Name, Namespace, UID string
}

// ipIndex is the informers' index name for addresses, keyed by netip.Addr.String() so that
// an IPv6 address matches however the API server spelled it.
const ipIndex = "ip"

// transformPeerPod keeps what PeerByIP needs of any pod in the cluster: identity, IPs and
// whether they can be attributed (see podIPs).
func transformPeerPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: strippedMeta(&pod.ObjectMeta),
		Spec:       corev1.PodSpec{HostNetwork: pod.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: pod.Status.Phase, PodIPs: pod.Status.PodIPs},
	}
	if len(out.Status.PodIPs) == 0 && pod.Status.PodIP != "" {
		out.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	return out, nil
}

// podIPs is the IP index of pods. A hostNetwork pod is left out: its IP is its node's,
// shared with the node itself and every other hostNetwork pod there, so a connection to it
// cannot be attributed to that pod. A finished pod is left out too: its IP may already be
// reused by a new pod.
func podIPs(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil, nil
	}
	keys := make([]string, 0, len(pod.Status.PodIPs))
	for _, ip := range pod.Status.PodIPs {
		keys = appendAddr(keys, ip.IP)
	}
	return keys, nil
}

// transformService keeps a Service's identity and ClusterIPs.
func transformService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &corev1.Service{
		ObjectMeta: strippedMeta(&svc.ObjectMeta),
		Spec:       corev1.ServiceSpec{ClusterIPs: svc.Spec.ClusterIPs},
	}
	if len(out.Spec.ClusterIPs) == 0 && svc.Spec.ClusterIP != "" {
		out.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	return out, nil
}

// serviceIPs is the IP index of Services: every ClusterIP (one per family when dual-stack).
// Headless Services ("None") and ExternalName Services have none.
func serviceIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(svc.Spec.ClusterIPs))
	for _, ip := range svc.Spec.ClusterIPs {
		keys = appendAddr(keys, ip)
	}
	return keys, nil
}

// appendAddr appends the canonical form of ip; "None", "" and garbage are skipped.
func appendAddr(keys []string, ip string) []string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return keys
	}
	return append(keys, addr.Unmap().String())
}
