package podnetreceiver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
)

// The opt-in service graph from real traffic between pods a real API server names, in both
// aggregation modes: a Deployment's client pod dials the server pod directly, through a Service
// ClusterIP (DNATed), and a closed port; a client that is no pod dials the server. Every
// connection is on exactly one edge, with workload names from the pods' controllers, and the
// failed connect is counted as failed; the server's accepts from the pod are left to the
// client's side. Found by an independent check, and covered here: a hostNetwork client pod (at
// its node's address, never named as a peer) was counted at both ends, and names taken from the
// shape of pod names split a long Deployment name's pods into one workload each and cut a bare
// pod's name.
func TestServiceGraphEdges(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster, kubeconfig := startShopCluster(t)

	netw := netnstest.NewNetwork(t, 174)
	client, server, stranger := netw.AddPod(), netw.AddPod(), netw.AddPod()
	agent, long, bare := netw.AddPod(), netw.AddPod(), netw.AddPod()
	cronRun, dated := netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	kubeOwnedPod(t, cluster, cg, client, "web-6d4cf56db6-x7k2p", replicaSet("web-6d4cf56db6", "6d4cf56db6"))
	kubeOwnedPod(t, cluster, cg, server, "api-7f8b9c6d5-bq2lz", replicaSet("api-7f8b9c6d5", "7f8b9c6d5"))
	// The API server cuts a generateName base to 58 characters and appends 5 with no dash.
	kubeOwnedPod(t, cluster, cg, long, "payments-reconciliation-ledger-exporter-secondary-5b8d9c7fmp8c5",
		replicaSet("payments-reconciliation-ledger-exporter-secondary-5b8d9c7f", "5b8d9c7f"))
	kubeOwnedPod(t, cluster, cg, bare, "proxy-https", kubetest.Pod{})
	// A CronJob's run, named after this minute, and a Job whose name ends in a date, not a
	// schedule (found by an independent check: it was "migrate").
	kubeOwnedPod(t, cluster, cg, cronRun, fmt.Sprintf("backup-%d-x7k2p", time.Now().Unix()/60), job(fmt.Sprintf("backup-%d", time.Now().Unix()/60)))
	kubeOwnedPod(t, cluster, cg, dated, "migrate-20261206-x7k2p", job("migrate-20261206"))
	// A hostNetwork pod: its addresses are its node's (status.hostIPs), named at its own end
	// only, by its cgroup.
	agentCID := netnstest.NewContainerID()
	agentPod := cluster.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: "node-agent-x7k2p", Node: node, HostNetwork: true,
		IPs: []string{agent.IPv4.String(), agent.IPv6.String()}, Containers: map[string]string{"agent": "containerd://" + agentCID},
		Controller: &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "node-agent"},
	})
	agent.Cgroup = cg.Container(string(agentPod.UID), agentCID)
	svc := cluster.CreateService(t, kubetest.Service{Namespace: "shop", Name: "backend"})
	clusterIP := kubetest.ClusterIPs(svc)[0]
	client.DNATOutput(netip.AddrPortFrom(clusterIP, 80), netip.AddrPortFrom(server.IPv4, 8080))

	serverAt := server.IPv4.String()
	for _, mode := range []struct {
		peerPods k8smeta.PeerPods
		want     map[string]edgeCounts
	}{
		{k8smeta.PeerPodsAll, map[string]edgeCounts{
			"shop/web -> shop/api":                                               {opens: 3, failed: 1}, // two connections and the refused one
			"shop/web -> shop/backend":                                           {opens: 1},            // the Service, as dialled
			stranger.IPv4.String() + " -> shop/api":                              {opens: 1},            // a client that is no pod, from the server's side
			"shop/node-agent -> shop/api":                                        {opens: 1},            // at its node's address: not again by the server
			"shop/payments-reconciliation-ledger-exporter-secondary -> shop/api": {opens: 2},
			"shop/proxy-https -> shop/api":                                       {opens: 1},
			"shop/backup -> shop/api":                                            {opens: 1},
			"shop/migrate-20261206 -> shop/api":                                  {opens: 1},
		}},
		// No client pod is named at the server, so the server cannot tell the pod's connections
		// from the stranger's: it counts neither (an independent check saw each pod-to-pod
		// connection on two edges, once by the client's workload and once by its address).
		{k8smeta.PeerPodsEndpoints, map[string]edgeCounts{
			"shop/web -> " + serverAt:        {opens: 3, failed: 1}, // in no EndpointSlice: by address
			"shop/web -> shop/backend":       {opens: 1},
			"shop/node-agent -> " + serverAt: {opens: 1},
			"shop/payments-reconciliation-ledger-exporter-secondary -> " + serverAt: {opens: 2},
			"shop/proxy-https -> " + serverAt:                                       {opens: 1},
			"shop/backup -> " + serverAt:                                            {opens: 1},
			"shop/migrate-20261206 -> " + serverAt:                                  {opens: 1},
		}},
	} {
		configure := func(cfg *Config) {
			cfg.NodeName = node
			cfg.Kubernetes = k8smeta.APIConfig{AuthType: k8smeta.AuthTypeKubeConfig, KubeConfig: kubeconfig, PeerPods: mode.peerPods}
			cfg.Metrics.TracesServiceGraphRequestTotal.Enabled = true
			cfg.Metrics.TracesServiceGraphRequestFailedTotal.Enabled = true
		}
		_, fromKernel, stopKernel := startReceiverWith(t, componenttest.NewNopHost(), configure) // logs too: metrics from the kernel
		fromEvents, stopEvents := startMetricsOnlyWith(t, aggregationEvents, configure)

		srv := server.StartServer(t, "0.0.0.0:8080", 10)
		toServer := netip.AddrPortFrom(server.IPv4, 8080).String()
		for _, to := range []netip.AddrPort{
			netip.AddrPortFrom(server.IPv4, 8080), netip.AddrPortFrom(server.IPv4, 8080), netip.AddrPortFrom(clusterIP, 80),
		} {
			_, res := client.Dial(t, to.String(), "hi")
			require.Empty(t, res, to)
		}
		for _, from := range []*netnstest.Pod{stranger, agent, long, long, bare, cronRun, dated} {
			_, res := from.Dial(t, toServer, "hi")
			require.Empty(t, res)
		}
		dialRefused(t, client, server.IPv4)
		srv.Wait(t)
		require.Eventually(t, func() bool { return socketsClosed(client, server, stranger, agent, long, bare, cronRun, dated) }, 10*time.Second, 20*time.Millisecond,
			"every TCP socket of the pods closed")
		stopKernel()
		stopEvents()

		for agg, sink := range map[string][]pmetric.Metrics{"kernel": fromKernel.AllMetrics(), "events": fromEvents.AllMetrics()} {
			assert.Equal(t, mode.want, edges(sink), "peer_pods %s, %s aggregation", mode.peerPods, agg)
		}
	}
}

// replicaSet is a Deployment's pod's controller and pod-template-hash label.
func replicaSet(name, hash string) kubetest.Pod {
	return kubetest.Pod{
		Labels:     map[string]string{"pod-template-hash": hash},
		Controller: &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name},
	}
}

// job is a Job's pod's controller.
func job(name string) kubetest.Pod {
	return kubetest.Pod{Controller: &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: name}}
}

// kubeOwnedPod is kubePod with owner's labels and controller.
func kubeOwnedPod(t *testing.T, c *kubetest.Cluster, cg *netnstest.KubeletCgroups, p *netnstest.Pod, name string, owner kubetest.Pod) {
	cid := netnstest.NewContainerID()
	created := c.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: name, Node: node, Labels: owner.Labels, Controller: owner.Controller,
		IPs: []string{p.IPv4.String(), p.IPv6.String()}, Containers: map[string]string{"main": "containerd://" + cid},
	})
	p.Cgroup = cg.Container(string(created.UID), cid)
}

type edgeCounts struct{ opens, failed int64 }

// edges reads the service graph of the last emission (cumulative: it holds everything).
func edges(all []pmetric.Metrics) map[string]edgeCounts {
	out := map[string]edgeCounts{}
	if len(all) == 0 {
		return out
	}
	for _, rm := range all[len(all)-1].ResourceMetrics().All() {
		for _, m := range rm.ScopeMetrics().At(0).Metrics().All() {
			if m.Name() != "traces_service_graph_request_total" && m.Name() != "traces_service_graph_request_failed_total" {
				continue
			}
			for _, dp := range m.Sum().DataPoints().All() {
				c, _ := dp.Attributes().Get("client")
				s, _ := dp.Attributes().Get("server")
				k := c.Str() + " -> " + s.Str()
				e := out[k]
				if m.Name() == "traces_service_graph_request_total" {
					e.opens += dp.IntValue()
				} else {
					e.failed += dp.IntValue()
				}
				out[k] = e
			}
		}
	}
	return out
}
