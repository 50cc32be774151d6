package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/podnet/podnet/internal/promapi"
)

// The labels podnet's series carry through the collector's prometheus exporter with
// resource_constant_labels k8s.* (examples/kubernetes/collector-config.yaml): the local end's
// pod and, when k8s_attributes ran, its owner; the peer as podnet names it.
const (
	localLabels = "k8s_namespace_name, k8s_pod_name, k8s_deployment_name, k8s_statefulset_name, k8s_daemonset_name, k8s_cronjob_name, k8s_job_name"
	peerLabels  = "podnet_peer_k8s_namespace_name, podnet_peer_k8s_pod_name, podnet_peer_k8s_service_name, network_peer_address"
)

// queries are what the map is drawn from, over one window. Edges come from the client's side:
// podnet runs on every node, so each connection a pod makes is counted where it starts, and
// the peer is named there (a Service by the ClusterIP dialled). Only connections whose client
// is no pod (outside the cluster, a host process) are taken from the server's side.
type queries struct {
	owners, connections, failed, bytesSent, bytesReceived, fromOutside string
}

func newQueries(window string) queries {
	client := `podnet_connection_role="client", k8s_pod_name!=""`
	return queries{
		owners: fmt.Sprintf(`group by (%s) (last_over_time(podnet_tcp_connections_total{k8s_pod_name!=""}[%s]))`,
			localLabels, window),
		connections: fmt.Sprintf(`sum by (%s, %s) (rate(podnet_tcp_connections_total{%s, error_type=""}[%s]))`,
			localLabels, peerLabels, client, window),
		failed: fmt.Sprintf(`sum by (%s, %s) (rate(podnet_tcp_connections_total{%s, error_type!=""}[%s]))`,
			localLabels, peerLabels, client, window),
		// Two queries, not one over both names: rate() drops the name, and the sent and received
		// series of a connection pair would then be the same series to Prometheus.
		bytesSent: fmt.Sprintf(`sum by (%s, %s) (rate(podnet_tcp_bytes_sent_total{%s}[%s]))`,
			localLabels, peerLabels, client, window),
		bytesReceived: fmt.Sprintf(`sum by (%s, %s) (rate(podnet_tcp_bytes_received_total{%s}[%s]))`,
			localLabels, peerLabels, client, window),
		fromOutside: fmt.Sprintf(`sum by (%s, network_peer_address) (rate(podnet_tcp_connections_total{podnet_connection_role="server", k8s_pod_name!="", podnet_peer_k8s_pod_name="", error_type=""}[%s]))`,
			localLabels, window),
	}
}

// collect asks Prometheus and builds the graph.
func collect(ctx context.Context, client *http.Client, url, window string) (*graph, error) {
	q := newQueries(window)
	ask := func(promql string) ([]promapi.Sample, error) { return promapi.Query(ctx, client, url, promql) }
	owners, err := ask(q.owners)
	if err != nil {
		return nil, err
	}
	g := newGraph(owners)
	for _, part := range []struct {
		promql string
		add    func(promapi.Sample)
	}{
		{q.connections, func(s promapi.Sample) { g.edge(g.local(s.Labels), g.peer(s.Labels)).connections += s.Value }},
		{q.failed, func(s promapi.Sample) { g.edge(g.local(s.Labels), g.peer(s.Labels)).failed += s.Value }},
		{q.bytesSent, func(s promapi.Sample) { g.edge(g.local(s.Labels), g.peer(s.Labels)).bytes += s.Value }},
		{q.bytesReceived, func(s promapi.Sample) { g.edge(g.local(s.Labels), g.peer(s.Labels)).bytes += s.Value }},
		{q.fromOutside, func(s promapi.Sample) { g.edge(g.peer(s.Labels), g.local(s.Labels)).connections += s.Value }},
	} {
		samples, err := ask(part.promql)
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			part.add(s)
		}
	}
	return g, nil
}
