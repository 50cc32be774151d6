//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// The opt-in service graph: traces_service_graph_request_total and
// traces_service_graph_request_failed_total{client, server}, the metrics (and names) of the
// collector's servicegraph connector, so that Grafana's service graph view - which reads just
// those - draws podnet's L4 edges unchanged. An edge is a pair of names: a pod's workload
// (namespace/controller, k8smeta's workloadOf), a Service as dialled, or an address. Each
// connection counts on exactly one edge, once across the cluster when podnet runs on every node:
//   - where the client is, when the client is a pod: server = the Service it dialled (a
//     ClusterIP), else the peer pod's workload, else the peer address;
//   - where the client is, when it is the node's own process (no pod, in the node's network
//     namespace) and its server a pod or a Service: client = the node's address of the
//     connection's family, as the server's node would see it;
//   - where the server is, when the server is a pod and its client neither a pod nor at a
//     node's address (outside the cluster): client = that address. Only with
//     kubernetes.peer_pods all, which watches every pod, so names every client pod and knows
//     every node's address (its pods' status.hostIPs). A client at a node's address is a node's
//     process, a hostNetwork pod, or a pod masqueraded to its node's address (a hairpin through
//     its own Service): counted where it is. In the other modes the server end names no client
//     pod, cannot tell one from a client outside pods, and counts no edge.
// A connection with no pod at either end is not pod traffic: no edge. Nor is a node's process's
// connection to a hostNetwork pod (at a node's address, so named by neither end). A client pod
// whose address the server's node has not learned yet (its first seconds) is counted at both ends.

// edgeKey is an edge of the graph.
type edgeKey struct{ client, server string }

// edge is an edge's cumulative counts since start.
type edge struct {
	start, updated pcommon.Timestamp
	opens, failed  int64
	forgotten      bool // by the idle expiry: series that hold it look it up again
}

// serviceGraph counts edges, bounded by max_metric_series like the series (one more edge folds
// into the overflow edge). It is owned by connectionMetrics and shares its lock.
type serviceGraph struct {
	on  bool
	max int
	// serverEnds: server ends count edges of clients outside the cluster (peer_pods all names
	// every client pod and knows every node's address, so an unnamed client is neither).
	serverEnds bool
	edges      map[edgeKey]*edge
	// bySeries: a series is one edge, which it keeps once named (every attribute kept). With
	// some dropped, one series holds connections to several peers, each named again (found
	// by an independent review: every connection on the first peer's edge).
	bySeries bool
}

// overflowEdge takes the edges beyond the bound, and the kernel's overflow entry (which has no
// names); emitted with otel.metric.overflow=true alone, as the series' overflow.
var overflowEdge = edgeKey{}

func newServiceGraph(cfg *Config, bySeries bool) serviceGraph {
	return serviceGraph{
		bySeries:   bySeries,
		on:         cfg.serviceGraphOn(),
		max:        cfg.MaxMetricSeries,
		serverEnds: cfg.Kubernetes.PeerPods == "" || cfg.Kubernetes.PeerPods == k8smeta.PeerPodsAll,
		edges:      map[edgeKey]*edge{},
	}
}

// count adds a series' opens (failed: those that failed) to its edge, if it has one. The edge
// is named once per series and local end, not per event, and again when its peer turns out to
// be a node's address (podnet counts before the pods are listed): a kubelet's probes, counted by
// the server before, are then the kubelet's node's to count.
func (g *serviceGraph) count(k *seriesKey, local *localEnd, s *series, overflowed bool, names *stringCache, opens, failed int64, now pcommon.Timestamp) {
	if !g.on || opens == 0 {
		return
	}
	if overflowed {
		// Folded into the overflow series: on the overflow edge if its own series (k, local)
		// would have had an edge, and on none if it would not (a server end whose client is a
		// pod, counted at the client; a connection with no pod at either end).
		if _, ok := g.edgeOf(k, local, names); ok {
			e := g.get(overflowEdge, now)
			e.opens += opens
			e.failed += failed
			e.updated = now
		}
		return
	}
	if !g.bySeries {
		edge, ok := g.edgeOf(k, local, names)
		if edge != s.edge || ok != s.hasEdge {
			s.edge, s.hasEdge, s.edgeAt = edge, ok, nil
		}
	} else if s.edgeLocal != s.local || s.edgeNode != k.peerID.Node {
		s.edge, s.hasEdge = g.edgeOf(k, s.local, names)
		s.edgeLocal, s.edgeNode, s.edgeAt = s.local, k.peerID.Node, nil
	}
	if s.hasEdge {
		e := s.edgeAt
		if e == nil || e.forgotten {
			e = g.get(s.edge, now) // again when its idle expiry forgot it
			s.edgeAt = e
		}
		e.opens += opens
		e.failed += failed
		e.updated = now
	}
}

// edgeOf names a series' edge; false when the series is counted elsewhere, or nowhere.
func (g *serviceGraph) edgeOf(k *seriesKey, local *localEnd, names *stringCache) (edgeKey, bool) {
	peer := &k.peerID
	switch {
	case k.role == event.Client && local.attr.PodName != "":
		return edgeKey{workloadName(local.attr.Namespace, local.attr.Workload), serverOf(k, names)}, true
	case k.role == event.Client && (peer.ServiceName != "" || peer.PodName != ""):
		if addr, ok := local.nodeAddrs.of(k.peer.Unmap().Is6()); ok { // the server's family (a socket may be dual-stack)
			return edgeKey{names.addr(addr), serverOf(k, names)}, true
		}
	case k.role == event.Server && g.serverEnds && local.attr.PodName != "" && peer.PodName == "" && !peer.Node:
		return edgeKey{names.addr(k.peer), workloadName(local.attr.Namespace, local.attr.Workload)}, true
	}
	return edgeKey{}, false
}

// serverOf names a client's server: the Service dialled, the pod's workload, or the address.
func serverOf(k *seriesKey, names *stringCache) string {
	switch peer := &k.peerID; {
	case peer.ServiceName != "":
		return peer.Namespace + "/" + peer.ServiceName
	case peer.PodName != "":
		return workloadName(peer.Namespace, peer.Workload)
	}
	return names.addr(k.peer)
}

func (g *serviceGraph) get(key edgeKey, now pcommon.Timestamp) *edge {
	e := g.edges[key]
	if e == nil {
		named := len(g.edges)
		if _, ok := g.edges[overflowEdge]; ok {
			named-- // the overflow edge is beside the bound, as the overflow series is
		}
		if key != overflowEdge && named >= g.max {
			key = overflowEdge
			e = g.edges[key]
		}
		if e == nil {
			e = &edge{start: now, updated: now}
			g.edges[key] = e
		}
	}
	return e
}

// emit records every live edge under the node's resource and appends them to md; edges idle
// past the series' expiry are forgotten (a series holding one keeps it updated).
func (m *connectionMetrics) emitServiceGraph(md pmetric.Metrics, now pcommon.Timestamp, emitted map[seriesOwner]pmetric.ResourceMetrics) {
	g := &m.graph
	if !g.on {
		return
	}
	var overflow *edge
	for key, e := range g.edges {
		if now.AsTime().Sub(e.updated.AsTime()) > m.expiry {
			e.forgotten = true
			delete(g.edges, key)
			continue
		}
		if key == overflowEdge {
			overflow = e
			continue
		}
		m.recordEdge(now, key, e)
	}
	takeInto(md, emitted, overflowKey.res, m.mb.Emit(metadata.WithResource(m.node.res)))
	if overflow != nil {
		m.recordEdge(now, overflowEdge, overflow)
		ov := m.mb.Emit(metadata.WithResource(m.node.res))
		markOverflow(ov)
		takeInto(md, emitted, overflowKey.res, ov)
	}
}

func (m *connectionMetrics) recordEdge(now pcommon.Timestamp, key edgeKey, e *edge) {
	m.mb.Reset(metadata.WithStartTime(startedBy(&e.start, now)))
	m.mb.RecordTracesServiceGraphRequestTotalDataPoint(now, e.opens, key.client, key.server)
	m.mb.RecordTracesServiceGraphRequestFailedTotalDataPoint(now, e.failed, key.client, key.server)
}

// workloadName is a workload as namespace/name.
func workloadName(namespace, workload string) string {
	return namespace + "/" + workload
}
