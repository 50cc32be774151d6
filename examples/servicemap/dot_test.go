package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/podnet/podnet/internal/promapi"
)

func sample(v float64, kv ...string) promapi.Sample {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return promapi.Sample{Labels: l, Value: v}
}

// A client Deployment's pod dials a Service, a StatefulSet pod directly (some refused), and an
// address outside; someone outside dials the StatefulSet; one series had no traffic.
func TestDOTFromSeries(t *testing.T) {
	g := newGraph([]promapi.Sample{
		sample(1, "k8s_namespace_name", "shop", "k8s_pod_name", "web-7d9f-x2", "k8s_deployment_name", "web"),
		sample(1, "k8s_namespace_name", "shop", "k8s_pod_name", "db-0", "k8s_statefulset_name", "db"),
	})
	web := map[string]string{"k8s_namespace_name": "shop", "k8s_pod_name": "web-7d9f-x2", "k8s_deployment_name": "web"}
	with := func(extra ...string) map[string]string {
		l := map[string]string{}
		for k, v := range web {
			l[k] = v
		}
		for i := 0; i < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	toDB := with("podnet_peer_k8s_namespace_name", "shop", "podnet_peer_k8s_pod_name", "db-0", "network_peer_address", "10.0.0.7")
	toSvc := with("podnet_peer_k8s_namespace_name", "shop", "podnet_peer_k8s_service_name", "cart", "network_peer_address", "10.96.0.9")
	g.edge(g.local(toDB), g.peer(toDB)).connections += 2
	g.edge(g.local(toDB), g.peer(toDB)).failed += 0.5
	g.edge(g.local(toDB), g.peer(toDB)).bytes += 1500
	g.edge(g.local(toSvc), g.peer(toSvc)).connections += 0.25
	idle := with("network_peer_address", "192.0.2.1")
	g.edge(g.local(idle), g.peer(idle))
	ingress := map[string]string{"k8s_namespace_name": "shop", "k8s_pod_name": "db-0", "network_peer_address": "198.51.100.4"}
	g.edge(g.peer(ingress), g.local(ingress)).connections += 0.1

	want := `digraph podnet {
  graph [rankdir=LR, fontname=Helvetica, labelloc=t, label="t"];
  node [fontname=Helvetica, fontsize=11];
  edge [fontname=Helvetica, fontsize=10];
  "deployment/shop/web" [label="web\ndeployment · shop", shape=box, style="rounded,filled", fillcolor="#e8f0fe"];
  "external/198.51.100.4" [label="198.51.100.4\nexternal", shape=box, style=dashed];
  "service/shop/cart" [label="cart\nservice · shop", shape=ellipse, style=filled, fillcolor="#fff4e0"];
  "statefulset/shop/db" [label="db\nstatefulset · shop", shape=box, style="rounded,filled", fillcolor="#e8f0fe"];
  "deployment/shop/web" -> "service/shop/cart" [label="0.25 conn/s"];
  "deployment/shop/web" -> "statefulset/shop/db" [label="2 conn/s\n0.5 failed/s\n1.5 kB/s", color="#d62728", fontcolor="#d62728"];
  "external/198.51.100.4" -> "statefulset/shop/db" [label="0.1 conn/s"];
}
`
	if d := cmp.Diff(want, g.dot("t")); d != "" {
		t.Errorf("DOT (-want +got):\n%s", d)
	}
}

func TestPodWithoutOwnerIsItsOwnNode(t *testing.T) {
	g := newGraph(nil)
	l := map[string]string{"k8s_namespace_name": "a", "k8s_pod_name": "p", "podnet_peer_k8s_namespace_name": "b", "podnet_peer_k8s_pod_name": "q"}
	if got := g.local(l).ID(); got != "pod/a/p" {
		t.Errorf("local = %s, want pod/a/p", got)
	}
	if got := g.peer(l).ID(); got != "pod/b/q" {
		t.Errorf("peer = %s, want pod/b/q", got)
	}
}
