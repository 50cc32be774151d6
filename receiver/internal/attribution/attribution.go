// Package attribution is the seam between kernel identities (network namespace, cgroup, peer
// IP) and workload identities (pods, containers, services).
package attribution // import "github.com/podnet/podnet/receiver/internal/attribution"

import (
	"net/netip"

	"github.com/podnet/podnet/receiver/internal/timespan"
)

// Local identifies the workload that owns a socket on this node. Empty fields are unknown.
type Local struct {
	PodUID    string
	PodName   string
	Namespace string
	// Workload is the pod's controller (a Deployment, DaemonSet, ...; k8smeta's workloadOf),
	// or the pod itself without one; for the service graph only.
	Workload      string
	ContainerName string
	ContainerID   string
}

// Peer identifies the other end of a connection. Empty fields are unknown; PodName and
// ServiceName are both set when a connection to a Service was translated to a backend pod
// (the receiver merges them).
type Peer struct {
	PodName     string
	PodUID      string
	Namespace   string
	ServiceName string
	// Workload is a pod's, as Local's; Node: the address is a node's (never a pod's: a
	// hostNetwork pod shares it), known with peer_pods all only. Both for the service graph
	// only: never emitted.
	Workload string
	Node     bool
	// NoReadyEndpoints: the peer is a Service whose EndpointSlices list no ready endpoint for
	// the family and port dialled (known only with EndpointSlice access); set on failed
	// connects only (Attributor.NoReadyEndpoints).
	NoReadyEndpoints bool
}

// Span is the time over which a peer's name holds (k8smeta's answers carry the same type).
type Span = timespan.Span

// Always is the span of a name that holds at any time.
var Always = timespan.Always

// Attributor names the workloads at both ends. Implementations must be cheap and must not
// block: they are called for every event on the receiver's read loop.
type Attributor interface {
	Local(netnsIno uint32, cgroupID uint64) Local
	// Peer names who had addr at time at (Unix ns: when the connection began), and the span
	// over which that answer holds.
	Peer(addr netip.Addr, at int64) (Peer, Span)
	// NoReadyEndpoints reports whether p, a Service dialled at dialled (a ClusterIP and one of
	// its ports), has no ready endpoint there, which kube-proxy answers with a reject: asked
	// of failed connects only.
	NoReadyEndpoints(p Peer, dialled netip.AddrPort) bool
	// NodeAddrs are this node's addresses, as other nodes see its own processes' connections
	// (the service graph names them so); none when unknown.
	NodeAddrs() []netip.Addr
}

// None attributes nothing: a node without Kubernetes metadata.
type None struct{}

func (None) Local(uint32, uint64) Local          { return Local{} }
func (None) Peer(netip.Addr, int64) (Peer, Span) { return Peer{}, Always }

func (None) NoReadyEndpoints(Peer, netip.AddrPort) bool { return false }

func (None) NodeAddrs() []netip.Addr { return nil }
