package k8smeta

import (
	"net/netip"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PeerKind says what a remote address belongs to.
type PeerKind uint8

const (
	PeerPod     PeerKind = iota + 1 // a pod IP (never a hostNetwork pod's)
	PeerService                     // a Service ClusterIP, before any DNAT to a pod
)

// Peer is the pod or Service behind a remote address.
type Peer struct {
	Kind                 PeerKind
	Name, Namespace, UID string
	Workload             string // a pod's: see workloadOf
}

// ipIndex is the informers' index name for addresses, keyed by netip.Addr.String() so that
// an IPv6 address matches however the API server spelled it.
const ipIndex = "ip"

// addressOwner is what the cluster-wide informers store for each pod and Service: their
// identity and attributable addresses. It replaces the whole object (a stripped corev1.Pod
// would still be a 1.2 kB struct), which matters with every pod of the cluster cached on
// every node; see TestMemoryPer10kPods.
type addressOwner struct {
	metav1.ObjectMeta // identity, resource version, deletion timestamp (see strippedMeta)
	ips               []string
	ports             []servicePort          // a Service's TCP ports; none for a pod
	workload          unique.Handle[string]  // a pod's (see workloadOf); zero for a Service
	host              unique.Handle[hostIPs] // a pod's node's addresses (NodeAddress)
}

// servicePort is a Service's TCP port and its name, which kube-proxy finds its endpoints by.
type servicePort struct {
	port int32
	name string
}

// GetObjectKind and DeepCopyObject: see localPod's.
func (a *addressOwner) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (a *addressOwner) DeepCopyObject() runtime.Object {
	return &addressOwner{
		ObjectMeta: *a.DeepCopy(), ips: append([]string(nil), a.ips...), ports: append([]servicePort(nil), a.ports...),
		workload: a.workload, host: a.host,
	}
}

// transformPeerPod keeps a pod's attributable IPs. A hostNetwork pod has none: its IP is
// its node's, shared with the node itself and every other hostNetwork pod there, so a
// connection to it cannot be attributed to that pod. A finished pod has none either: its
// IP may already belong to a new pod. Every pod keeps its node's addresses (NodeAddress).
func transformPeerPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &addressOwner{ObjectMeta: strippedMeta(&pod.ObjectMeta), workload: workloadOf(pod), host: hostIPsOf(pod)}
	if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return out, nil
	}
	for _, ip := range pod.Status.PodIPs {
		out.ips = appendAddr(out.ips, ip.IP)
	}
	if len(pod.Status.PodIPs) == 0 {
		out.ips = appendAddr(out.ips, pod.Status.PodIP)
	}
	return out, nil
}

// transformService keeps a Service's ClusterIPs, one per family when dual-stack. Headless
// ("None") and ExternalName Services have none.
func transformService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &addressOwner{ObjectMeta: strippedMeta(&svc.ObjectMeta)}
	for _, ip := range svc.Spec.ClusterIPs {
		out.ips = appendAddr(out.ips, ip)
	}
	if len(svc.Spec.ClusterIPs) == 0 {
		out.ips = appendAddr(out.ips, svc.Spec.ClusterIP)
	}
	for _, p := range svc.Spec.Ports {
		if p.Protocol == corev1.ProtocolTCP || p.Protocol == "" {
			out.ports = append(out.ports, servicePort{port: p.Port, name: p.Name})
		}
	}
	return out, nil
}

func addressIndex(obj any) ([]string, error) {
	if a, ok := obj.(*addressOwner); ok {
		return a.ips, nil
	}
	return nil, nil
}

// appendAddr appends the canonical form of ip; "None", "" and garbage are skipped.
func appendAddr(keys []string, ip string) []string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return keys
	}
	return append(keys, addr.Unmap().String())
}
