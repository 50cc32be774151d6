package examples

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
)

// The shop: frontend dials the cart pod directly (and, refused, on a port nothing listens on)
// and through the cart Service; cart dials db-0. Each pair is driven twice — once, then the
// rest after Prometheus has the series — so that rates over the run are not zero.
const (
	shopNode        = "node-a"
	directConnects  = 4 // frontend → cart pod :8080
	serviceConnects = 3 // frontend → cart Service :80 → cart pod :8080
	refusedConnects = 2 // frontend → cart pod :8081, nothing listens
	dbConnects      = 2 // cart → db-0 :5432
	cartPayload     = "GET /cart"
	dbPayload       = "SELECT 1"
)

// TestPrometheusServiceMap runs podnet with the Kubernetes example's prometheus exporter
// against a real API server, a real Prometheus scraping it with examples/prometheus's job,
// and asks Prometheus, by pod name, how many connections each pod made to which pod or
// Service and how many failed: numbers the test itself drove. Then the service-map tool and
// the Grafana dashboard's queries run against the same Prometheus.
func TestPrometheusServiceMap(t *testing.T) {
	netnstest.RequireRoot(t)
	binary := requireCollector(t)
	requireBinary(t, "prometheus", "prometheus")
	cluster := kubetest.Start(t)
	cluster.Namespace(t, "shop")
	kubeconfig := kubetest.ApplyRBAC(t, cluster, "rbac.yaml")
	checkPrometheusRBAC(t, cluster)

	netw := netnstest.NewNetwork(t, 160)
	frontend, cart, db := netw.AddPod(), netw.AddPod(), netw.AddPod()
	cg := netnstest.NewKubeletCgroups(t)
	for pod, name := range map[*netnstest.Pod]string{frontend: "frontend", cart: "cart", db: "db-0"} {
		cid := netnstest.NewContainerID()
		created := cluster.CreatePod(t, kubetest.Pod{
			Namespace: "shop", Name: name, Node: shopNode,
			IPs: []string{pod.IPv4.String()}, Containers: map[string]string{"main": "containerd://" + cid},
		})
		pod.Cgroup = cg.Container(string(created.UID), cid)
	}
	clusterIP := kubetest.ClusterIPs(cluster.CreateService(t, kubetest.Service{Namespace: "shop", Name: "cart"}))[0]
	// kube-proxy's part, in the client's namespace: the ClusterIP's port 80 is DNATed to cart:8080.
	frontend.DNATOutput(netip.AddrPortFrom(clusterIP, 80), netip.AddrPortFrom(cart.IPv4, 8080))

	exporterAddr, healthAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	col := startCollector(t, binary, prometheusCollectorConfig(t, shopNode, kubeconfig, exporterAddr, healthAddr))
	col.waitHealthy(t, healthAddr)
	prom := startPrometheus(t, prometheusConfig(t, exporterAddr, healthAddr))
	t.Cleanup(func() {
		if t.Failed() {
			prom.dump(t)
		}
	})
	// Discovery hands the targets over within a few seconds of start.
	active, dropped := prom.activeTargets(t)
	for deadline := time.Now().Add(20 * time.Second); len(active)+dropped == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		active, dropped = prom.activeTargets(t)
	}
	if len(active) != 1 || active["http://"+exporterAddr+"/metrics"]["collector_pod"] != "podnet-x7k2p" || dropped != 1 {
		t.Fatalf("prometheus/prometheus.yml's relabelling: active targets %v, %d dropped; want only the exporter's port, with collector_pod, and the other port dropped", active, dropped)
	}

	cartSrv := cart.StartServer(t, "0.0.0.0:8080", directConnects+serviceConnects)
	dbSrv := db.StartServer(t, "0.0.0.0:5432", dbConnects)
	drive := func(direct, viaService, refused, toDB int) {
		t.Helper()
		for range direct {
			dial(t, frontend, netip.AddrPortFrom(cart.IPv4, 8080), cartPayload, "")
		}
		for range viaService {
			dial(t, frontend, netip.AddrPortFrom(clusterIP, 80), cartPayload, "")
		}
		for range refused {
			dial(t, frontend, netip.AddrPortFrom(cart.IPv4, 8081), cartPayload, "ECONNREFUSED")
		}
		for range toDB {
			dial(t, cart, netip.AddrPortFrom(db.IPv4, 5432), dbPayload, "")
		}
	}
	drive(1, 1, 1, 1)
	waitForValues(t, prom, shopExpectations(1, 1, 1, 1))
	drive(directConnects-1, serviceConnects-1, refusedConnects-1, dbConnects-1)
	cartSrv.Wait(t)
	dbSrv.Wait(t)
	waitForValues(t, prom, shopExpectations(directConnects, serviceConnects, refusedConnects, dbConnects))

	t.Run("service map", func(t *testing.T) { checkServiceMap(t, prom, netw.AddPod()) })
	t.Run("grafana dashboard", func(t *testing.T) { checkDashboardQueries(t, prom) })
}

func dial(t *testing.T, from *netnstest.Pod, to netip.AddrPort, payload, wantErr string) {
	t.Helper()
	if _, res := from.Dial(t, to.String(), payload); res != wantErr {
		t.Fatalf("dial %s from %s: %q, want %q", to, from.Name, res, wantErr)
	}
}

// shopExpectations are PromQL queries by pod name and the exact values they must return.
func shopExpectations(direct, viaService, refused, toDB int) map[string]map[string]float64 {
	const shop = `k8s_namespace_name="shop"`
	line := func(payload string) int { return len(payload) + 1 }
	return map[string]map[string]float64{
		// Client side: the pod that connected, and the pod or Service it dialled.
		`sum by (k8s_pod_name, podnet_peer_k8s_pod_name, podnet_peer_k8s_service_name) (podnet_tcp_connections_total{podnet_connection_role="client", error_type="", ` + shop + `})`: {
			`{k8s_pod_name="frontend", podnet_peer_k8s_pod_name="cart"}`:     float64(direct),
			`{k8s_pod_name="frontend", podnet_peer_k8s_service_name="cart"}`: float64(viaService),
			`{k8s_pod_name="cart", podnet_peer_k8s_pod_name="db-0"}`:         float64(toDB),
		},
		// Server side: the pod that accepted, and the client pod (through the Service too).
		`sum by (k8s_pod_name, podnet_peer_k8s_pod_name) (podnet_tcp_connections_total{podnet_connection_role="server", ` + shop + `})`: {
			`{k8s_pod_name="cart", podnet_peer_k8s_pod_name="frontend"}`: float64(direct + viaService),
			`{k8s_pod_name="db-0", podnet_peer_k8s_pod_name="cart"}`:     float64(toDB),
		},
		// Failed connects, by why and where.
		`sum by (k8s_pod_name, podnet_peer_k8s_pod_name, error_type, server_port) (podnet_tcp_connections_total{podnet_connection_role="client", error_type!="", ` + shop + `})`: {
			`{error_type="ECONNREFUSED", k8s_pod_name="frontend", podnet_peer_k8s_pod_name="cart", server_port="8081"}`: float64(refused),
		},
		// The opt-in service graph (the servicegraph connector's schema): each connection on one
		// edge, named by workload (and the Service cart is the workload cart's name too).
		`sum by (client, server) (traces_service_graph_request_total)`: {
			`{client="shop/frontend", server="shop/cart"}`: float64(direct + viaService + refused),
			`{client="shop/cart", server="shop/db-0"}`:     float64(toDB),
		},
		`sum by (client, server) (traces_service_graph_request_failed_total)`: {
			`{client="shop/frontend", server="shop/cart"}`: float64(refused),
			`{client="shop/cart", server="shop/db-0"}`:     0,
		},
		// Payload bytes each client sent (its line) and received ("ok " and the line back).
		`sum by (k8s_pod_name, podnet_peer_k8s_pod_name, podnet_peer_k8s_service_name) (podnet_tcp_bytes_sent_total{podnet_connection_role="client", ` + shop + `})`: {
			`{k8s_pod_name="frontend", podnet_peer_k8s_pod_name="cart"}`:     float64(direct * line(cartPayload)),
			`{k8s_pod_name="frontend", podnet_peer_k8s_service_name="cart"}`: float64(viaService * line(cartPayload)),
			`{k8s_pod_name="cart", podnet_peer_k8s_pod_name="db-0"}`:         float64(toDB * line(dbPayload)),
		},
		`sum by (k8s_pod_name, podnet_peer_k8s_pod_name, podnet_peer_k8s_service_name) (podnet_tcp_bytes_received_total{podnet_connection_role="client", ` + shop + `})`: {
			`{k8s_pod_name="frontend", podnet_peer_k8s_pod_name="cart"}`:     float64(direct * (3 + line(cartPayload))),
			`{k8s_pod_name="frontend", podnet_peer_k8s_service_name="cart"}`: float64(viaService * (3 + line(cartPayload))),
			`{k8s_pod_name="cart", podnet_peer_k8s_pod_name="db-0"}`:         float64(toDB * (3 + line(dbPayload))),
		},
	}
}

// waitForValues polls Prometheus until every query returns exactly what is expected: podnet
// emits every second and Prometheus scrapes every second, so a few seconds suffice.
func waitForValues(t *testing.T, prom *prometheus, want map[string]map[string]float64) {
	t.Helper()
	var diffs []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		diffs = diffs[:0]
		for q, w := range want {
			if d := cmp.Diff(w, prom.values(t, q)); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s (-want +got):\n%s", q, d))
			}
		}
		if len(diffs) == 0 {
			return
		}
	}
	t.Fatalf("prometheus did not return the driven connections within 30s:\n%s", strings.Join(diffs, "\n"))
}

// checkPrometheusRBAC applies examples/prometheus/rbac.yaml and lists the podnet namespace's
// pods as that ServiceAccount: what prometheus.yml's pod discovery does.
func checkPrometheusRBAC(t *testing.T, cluster *kubetest.Cluster) {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(kubetest.ApplyRBAC(t, cluster, "prometheus/rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cluster.ConfigFor(kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo].Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("podnet").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podnet"}); err != nil {
		t.Errorf("examples/prometheus/rbac.yaml does not let Prometheus discover podnet's pods: %v", err)
	}
}
