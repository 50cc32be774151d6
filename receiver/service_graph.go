//go:build linux

package podnetreceiver

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// The opt-in service graph: traces_service_graph_request_total and
// traces_service_graph_request_failed_total{client, server}, the metrics (and names) of the
// collector's servicegraph connector, so that Grafana's service graph view - which reads just
// those - draws podnet's L4 edges unchanged. An edge is a pair of workload names; each
// connection counts on exactly one edge, once across the cluster when podnet runs on every node:
//   - where the client is, when the client is a pod: server = the Service it dialled (a
//     ClusterIP), else the peer pod's workload, else the peer address (outside the cluster);
//   - where the server is, when the client is not a pod (outside the cluster, or a node's own
//     process): client = that address. A server whose client is a pod leaves the edge to the
//     client's node. Only with kubernetes.peer_pods all: in the other modes a client pod is not
//     named at the server (not even this node's), so the server cannot tell it from a client
//     outside pods, and its edge would be counted twice; there, clients outside pods make no edge.
// Connections between processes outside pods on both ends are not pod traffic: no edge. Nor is
// a pod's server connection whose client is this node's own process (a kubelet probe): the
// client is then counted by address, as any client outside pods.

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
	// serverEnds: server ends count edges of clients outside pods (peer_pods all names every
	// client pod, so an unnamed client is none).
	serverEnds bool
	edges      map[edgeKey]*edge
}

// overflowEdge takes the edges beyond the bound, and the kernel's overflow entry (which has no
// names); emitted with otel.metric.overflow=true alone, as the series' overflow.
var overflowEdge = edgeKey{}

func newServiceGraph(cfg *Config) serviceGraph {
	return serviceGraph{
		on:         cfg.serviceGraphOn(),
		max:        cfg.MaxMetricSeries,
		serverEnds: cfg.Kubernetes.PeerPods == "" || cfg.Kubernetes.PeerPods == k8smeta.PeerPodsAll,
		edges:      map[edgeKey]*edge{},
	}
}

// count adds a series' opens (failed: those that failed) to its edge, if it has one. The edge
// is named once per series and local end, not per event.
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
	if s.edgeLocal != s.local {
		s.edge, s.hasEdge = g.edgeOf(k, s.local, names)
		s.edgeLocal, s.edgeAt = s.local, nil
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

// edgeOf names a series' edge; false when the series is counted elsewhere.
func (g *serviceGraph) edgeOf(k *seriesKey, local *localEnd, names *stringCache) (edgeKey, bool) {
	peer := k.peerID
	var key edgeKey
	switch {
	case k.role == event.Client && local.attr.PodName != "":
		key.client = workloadName(local.attr.Namespace, local.attr.PodName)
		switch {
		case peer.ServiceName != "":
			key.server = peer.Namespace + "/" + peer.ServiceName
		case peer.PodName != "":
			key.server = workloadName(peer.Namespace, peer.PodName)
		default:
			key.server = names.addr(k.peer)
		}
	case k.role == event.Server && g.serverEnds && peer.PodName == "" && local.attr.PodName != "":
		key.client = names.addr(k.peer)
		key.server = workloadName(local.attr.Namespace, local.attr.PodName)
	default:
		return edgeKey{}, false
	}
	return key, true
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
func (m *connectionMetrics) emitServiceGraph(md pmetric.Metrics, now pcommon.Timestamp) {
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
	m.mb.Emit(metadata.WithResource(m.node.res)).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	if overflow != nil {
		m.recordEdge(now, overflowEdge, overflow)
		ov := m.mb.Emit(metadata.WithResource(m.node.res))
		markOverflow(ov)
		ov.ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
}

func (m *connectionMetrics) recordEdge(now pcommon.Timestamp, key edgeKey, e *edge) {
	m.mb.Reset(metadata.WithStartTime(e.start))
	m.mb.RecordTracesServiceGraphRequestTotalDataPoint(now, e.opens, key.client, key.server)
	m.mb.RecordTracesServiceGraphRequestFailedTotalDataPoint(now, e.failed, key.client, key.server)
}

// workloadName is a pod's workload as namespace/name: the pod's name without the suffixes
// Kubernetes generates - a ReplicaSet's pod-template hash and the pod's own 5 characters
// ("web-6d4cf56db6-x7k2p" is "web"), a DaemonSet's or Job's 5 characters ("agent-x7k2p" is
// "agent"). Other names (a StatefulSet's "db-0", a bare pod) are their own workload. Read from
// the name because podnet's pod metadata keeps no owner (a smaller informer cache); the
// generated parts use only generateName's alphabet, which a hand-chosen name segment rarely
// matches. k8s_attributes can add the exact owner (k8s.deployment.name, ...) downstream.
func workloadName(namespace, pod string) string {
	return namespace + "/" + workloadOf(pod)
}

func workloadOf(pod string) string {
	base, suffix, ok := cutLast(pod)
	if !ok || len(suffix) != 5 || !generated(suffix) {
		return pod
	}
	if owner, hash, ok := cutLast(base); ok && (len(hash) >= 6 && len(hash) <= 10 && generated(hash) || scheduledTime(hash)) {
		return owner
	}
	return base
}

// scheduledTime says whether s is the suffix a CronJob gives each Job it makes: the scheduled
// time in minutes since the epoch, in decimal (8 digits until the 22nd century), so that every
// run of a CronJob is one workload, not a new edge per run.
func scheduledTime(s string) bool {
	if len(s) < 8 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// generated says whether s uses only the alphabet of Kubernetes' generated names and hashes
// (k8s.io/apimachinery/pkg/util/rand: consonants and digits, no vowels, no 0, 1 or 3).
func generated(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", rune(s[i])) {
			return false
		}
	}
	return true
}
