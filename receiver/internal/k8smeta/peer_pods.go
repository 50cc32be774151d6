package k8smeta

import "fmt"

// PeerPods says which remote pods the Store names, and so what every node watches: naming
// every pod means every node watches every pod of the cluster, the largest watch there is.
type PeerPods string

const (
	// PeerPodsAll names any pod by its IP, from a watch of every pod in the cluster.
	PeerPodsAll PeerPods = "all"
	// PeerPodsEndpoints names only pods listed in an EndpointSlice (pods behind a Service, headless
	// ones too), from the EndpointSlices' targetRefs: no cluster-wide pod watch. A client pod behind
	// no Service, a Job's pod or a pod not yet ready, is not named as a peer.
	PeerPodsEndpoints PeerPods = "endpoints"
	// PeerPodsNone names no remote pod; Services (by ClusterIP) and this node's own pods are still
	// named. For clusters where a gateway tier names peers (k8s_attributes on
	// network.peer.address) instead of every node.
	PeerPodsNone PeerPods = "none"
)

// validate accepts the three modes; empty means all, the default.
func (p PeerPods) validate() error {
	switch p {
	case "", PeerPodsAll, PeerPodsEndpoints, PeerPodsNone:
		return nil
	}
	return fmt.Errorf("peer_pods %q: want %q (every pod, a cluster-wide pod watch on every node), %q (pods behind Services, from EndpointSlices) or %q (no remote pod)",
		p, PeerPodsAll, PeerPodsEndpoints, PeerPodsNone)
}

// orAll resolves the empty default.
func (p PeerPods) orAll() PeerPods {
	if p == "" {
		return PeerPodsAll
	}
	return p
}
