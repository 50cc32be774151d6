package main

import "github.com/podnet/podnet/internal/promapi"

// node is one box of the map: a workload (or a pod without a known owner), a Service, or an
// address no pod or Service has.
type node struct {
	Kind      string // deployment, statefulset, daemonset, cronjob, job, pod, service, external
	Namespace string
	Name      string
}

// ID is the node's name in DOT, and so the <title> graphviz gives it in the SVG.
func (n node) ID() string {
	if n.Namespace == "" {
		return n.Kind + "/" + n.Name
	}
	return n.Kind + "/" + n.Namespace + "/" + n.Name
}

// stats are an edge's rates, per second over the window.
type stats struct {
	connections, failed, bytes float64
}

type graph struct {
	owners map[[2]string]node // namespace, pod → its workload
	edges  map[[2]node]*stats
}

// ownerLabels in the order a pod's owner is chosen: the workload users name, before the
// Job or ReplicaSet it runs through.
var ownerLabels = []struct{ label, kind string }{
	{"k8s_deployment_name", "deployment"},
	{"k8s_statefulset_name", "statefulset"},
	{"k8s_daemonset_name", "daemonset"},
	{"k8s_cronjob_name", "cronjob"},
	{"k8s_job_name", "job"},
}

// newGraph learns each pod's owner from the local ends' labels (k8s_attributes sets them where
// the pod runs); a peer pod is then drawn as its owner too, so both ends of an edge agree.
func newGraph(owners []promapi.Sample) *graph {
	g := &graph{owners: map[[2]string]node{}, edges: map[[2]node]*stats{}}
	for _, s := range owners {
		l := s.Labels
		for _, o := range ownerLabels {
			if name := l[o.label]; name != "" {
				g.owners[[2]string{l["k8s_namespace_name"], l["k8s_pod_name"]}] = node{Kind: o.kind, Namespace: l["k8s_namespace_name"], Name: name}
				break
			}
		}
	}
	return g
}

func (g *graph) pod(namespace, name string) node {
	if n, ok := g.owners[[2]string{namespace, name}]; ok {
		return n
	}
	return node{Kind: "pod", Namespace: namespace, Name: name}
}

// local is the end a series was counted at.
func (g *graph) local(l map[string]string) node {
	return g.pod(l["k8s_namespace_name"], l["k8s_pod_name"])
}

// peer is the other end: the Service the client dialled if podnet named one (even when it also
// names the backend pod, with service_backends.metric_attribute), else the peer pod, else the
// address.
func (g *graph) peer(l map[string]string) node {
	switch {
	case l["podnet_peer_k8s_service_name"] != "":
		return node{Kind: "service", Namespace: l["podnet_peer_k8s_namespace_name"], Name: l["podnet_peer_k8s_service_name"]}
	case l["podnet_peer_k8s_pod_name"] != "":
		return g.pod(l["podnet_peer_k8s_namespace_name"], l["podnet_peer_k8s_pod_name"])
	default:
		return node{Kind: "external", Name: l["network_peer_address"]}
	}
}

func (g *graph) edge(from, to node) *stats {
	k := [2]node{from, to}
	if g.edges[k] == nil {
		g.edges[k] = &stats{}
	}
	return g.edges[k]
}
