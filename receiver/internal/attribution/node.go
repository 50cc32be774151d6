package attribution

import (
	"net/netip"

	"github.com/podnet/podnet/receiver/internal/procscan"
)

// LocalResolver finds the pod and container that own a socket from its kernel identity
// (procscan.Scanner).
type LocalResolver interface {
	Lookup(netnsIno uint32, cgroupID uint64) (procscan.Ref, bool)
}

// Metadata names pods and services from the Kubernetes API (k8smeta.Store).
type Metadata interface {
	// Pod returns a pod on this node by the UID its cgroups carry, with the UID the API server
	// knows it by: for a static pod the cgroups carry the kubelet's (its manifest's hash), and
	// its mirror pod in the API has a metadata.uid of its own.
	Pod(cgroupUID string) (PodID, bool)
	// ContainerName names a container of a pod by its runtime id.
	ContainerName(podUID, containerID string) (string, bool)
	// Peer names the pod or Service that owned a cluster IP at time at, and the span over
	// which that holds.
	Peer(addr netip.Addr, at int64) (Peer, Span, bool)
	// ServiceReadyEndpoints counts the ready endpoints of a Service dialled at dialled (its
	// ClusterIP's family and its port); known is false without EndpointSlice access, before
	// they are listed, or for a Service or port it does not know.
	ServiceReadyEndpoints(namespace, service string, dialled netip.AddrPort) (ready int, known bool)
	// NodeAddrs are this node's addresses.
	NodeAddrs() []netip.Addr
}

// PodID names a pod: its API UID, name, namespace and workload (see Local).
type PodID struct{ UID, Name, Namespace, Workload string }

// Node attributes by what the node knows (namespaces and cgroups, no IPs: hostNetwork pods
// share the node's IP and IPs are reused) and names by what the API server knows. Either part
// may be missing: without metadata, locals carry pod UID and container id only; without a
// resolver (nil), only peers are named.
type Node struct {
	resolver LocalResolver
	meta     Metadata
}

// NewNode combines a resolver and metadata; either may be nil.
func NewNode(resolver LocalResolver, meta Metadata) *Node {
	return &Node{resolver: resolver, meta: meta}
}

func (n *Node) Local(netnsIno uint32, cgroupID uint64) Local {
	if n.resolver == nil {
		return Local{}
	}
	ref, ok := n.resolver.Lookup(netnsIno, cgroupID)
	if !ok || ref.PodUID == "" {
		return Local{}
	}
	l := Local{PodUID: ref.PodUID, ContainerID: ref.ContainerID}
	if n.meta == nil {
		return l
	}
	// The API's UID, which the other end of a connection and k8s_attributes know the pod by.
	if p, ok := n.meta.Pod(ref.PodUID); ok {
		l.PodName, l.Namespace, l.Workload = p.Name, p.Namespace, p.Workload
		if p.UID != "" {
			l.PodUID = p.UID
		}
	}
	if ref.ContainerID != "" {
		l.ContainerName, _ = n.meta.ContainerName(ref.PodUID, ref.ContainerID)
	}
	return l
}

func (n *Node) Peer(addr netip.Addr, at int64) (Peer, Span) {
	if n.meta == nil {
		return Peer{}, Always
	}
	p, span, _ := n.meta.Peer(addr, at)
	return p, span
}

func (n *Node) NodeAddrs() []netip.Addr {
	if n.meta == nil {
		return nil
	}
	return n.meta.NodeAddrs()
}

// NoReadyEndpoints reports whether the Service p names had no ready endpoint: unknown
// readiness says nothing; only the slices saying so does.
func (n *Node) NoReadyEndpoints(p Peer, dialled netip.AddrPort) bool {
	if n.meta == nil || p.ServiceName == "" {
		return false
	}
	ready, known := n.meta.ServiceReadyEndpoints(p.Namespace, p.ServiceName, dialled)
	return known && ready == 0
}
