package examples

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/netnstest"
)

const gatewayTestNode = "gateway-test-node"

// TestAgentToGateway runs examples/gateway on loopback: an agent (agent-config.yaml: podnet →
// otlp_grpc with a queue and retries) and a gateway (gateway-config.yaml: otlp → memory_limiter
// → batch, its backends swapped for file exporters, k8s_attributes left out: no API server).
// The gateway starts only after the traffic, as in a rollout, so the records must wait in the
// agent's queue and arrive by retry. Then everything podnet saw of two namespace pods must
// come out of the gateway, record by record and value by value, still naming the agent's node.
func TestAgentToGateway(t *testing.T) {
	netnstest.RequireRoot(t)
	binary := requireCollector(t)
	gatewayAddr, agentHealth := freeLoopbackAddr(t), freeLoopbackAddr(t)
	out := t.TempDir()
	agent := startCollector(t, binary, writeConfig(t, "agent.yaml", agentTestConfig(t, gatewayAddr, agentHealth)))
	agent.waitHealthy(t, agentHealth)

	inodes, wantRecords, wantSums := driveHTTP(t, 91, "hello through the gateway\n")

	agent.waitExportRetry(t, "logs")

	// The gateway's own backend exporter too: remote write into a real Prometheus.
	prom := startPrometheus(t, map[string]any{"global": map[string]any{}}, "--web.enable-remote-write-receiver")
	gatewayHealth := freeLoopbackAddr(t)
	gateway := startCollector(t, binary, writeConfig(t, "gateway.yaml", gatewayTestConfig(t, gatewayAddr, gatewayHealth, out, prom.url)))
	gateway.waitHealthy(t, gatewayHealth)

	// The agent's first retry comes 2.5-7.5 s after its failed export (initial_interval 5s),
	// later ones further apart; gRPC's reconnect backoff adds a few seconds (the loop ends at success).
	var got gatewayOutput
	expectOutput(t, " out of the gateway", 90*time.Second, 500*time.Millisecond, func() ([]plog.Logs, []pmetric.Metrics) {
		got = readGatewayOutput(t, out)
		return got.logs, got.metrics
	}, inodes, wantRecords, wantSums)
	if nodes := got.nodeNames(inodes); !slices.Equal(nodes, []string{gatewayTestNode}) {
		t.Errorf("k8s.node.name of the pods' resources out of the gateway: %q, want only the agent's %q", nodes, gatewayTestNode)
	}

	checkRemoteWrite(t, prom, inodes, wantSums)

	agent.stop(t)
	gateway.stop(t)
}

// checkRemoteWrite asks Prometheus for the connection counts the gateway's
// prometheus_remote_write sent it: the same exact values as the file exporter's, by the
// resource labels resource_to_telemetry_conversion adds (podnet_netns_inode).
func checkRemoteWrite(t *testing.T, prom *prometheus, inodes []int64, wantSums map[string]int64) {
	t.Helper()
	want := map[string]float64{}
	for k, v := range wantSums {
		f := strings.Fields(k) // as seriesKey writes it
		if len(f) != 6 || f[1] != "podnet.tcp.connections" {
			continue
		}
		labels := map[string]string{
			"podnet_netns_inode":     f[0],
			"podnet_connection_role": strings.TrimPrefix(f[2], "role="),
			"network_peer_address":   strings.TrimPrefix(f[3], "peer="),
			"server_port":            strings.TrimPrefix(f[4], "server.port="),
		}
		if e := strings.TrimPrefix(f[5], "error.type="); e != "" {
			labels["error_type"] = e // an empty label is no label
		}
		want[labelString(labels)] = float64(v)
	}
	if len(want) == 0 {
		t.Fatal("no podnet.tcp.connections series expected")
	}
	var ns []string
	for _, i := range inodes {
		ns = append(ns, strconv.FormatInt(i, 10))
	}
	q := `sum by (podnet_netns_inode, podnet_connection_role, network_peer_address, server_port, error_type) (podnet_tcp_connections_total{podnet_netns_inode=~"` + strings.Join(ns, "|") + `"})`
	var got map[string]float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = prom.values(t, q); cmp.Equal(want, got) {
			return
		}
	}
	prom.dump(t)
	t.Errorf("connections remote-written into Prometheus by the gateway (-want +got):\n%s", cmp.Diff(want, got))
}

// agentTestConfig is gateway/agent-config.yaml for this machine: no API server or /hostfs,
// a fixed node name, metrics every second, the gateway and health check on loopback.
func agentTestConfig(t *testing.T, gatewayAddr, healthAddr string) map[string]any {
	t.Helper()
	cfg := readYAML(t, "gateway/agent-config.yaml")
	podnet := cfg["receivers"].(map[string]any)["podnet"].(map[string]any)
	delete(podnet, "kubernetes")
	delete(podnet, "proc_root")
	podnet["node_name"] = gatewayTestNode
	podnet["metrics_interval"] = "1s"
	cfg["exporters"].(map[string]any)["otlp_grpc"].(map[string]any)["endpoint"] = gatewayAddr
	onLoopback(cfg, healthAddr)
	return cfg
}

// gatewayTestConfig is gateway/gateway-config.yaml without k8s_attributes (it needs an API
// server), receiving on loopback and writing logs and metrics to files in dir.
func gatewayTestConfig(t *testing.T, addr, healthAddr, dir, prometheusURL string) map[string]any {
	t.Helper()
	cfg := readYAML(t, "gateway/gateway-config.yaml")
	grpc := cfg["receivers"].(map[string]any)["otlp"].(map[string]any)["protocols"].(map[string]any)["grpc"].(map[string]any)
	grpc["endpoint"] = addr
	delete(cfg["processors"].(map[string]any), "k8s_attributes")
	exporters := cfg["exporters"].(map[string]any)
	remoteWrite := exporters["prometheus_remote_write"].(map[string]any)
	remoteWrite["endpoint"] = prometheusURL + "/api/v1/write"
	remoteWrite["tls"] = map[string]any{"insecure": true}
	cfg["exporters"] = map[string]any{
		"file/logs":               map[string]any{"path": filepath.Join(dir, "logs.jsonl")},
		"file/metrics":            map[string]any{"path": filepath.Join(dir, "metrics.jsonl")},
		"prometheus_remote_write": remoteWrite,
	}
	for name, p := range cfg["service"].(map[string]any)["pipelines"].(map[string]any) {
		p := p.(map[string]any)
		p["processors"] = slices.DeleteFunc(toStrings(p["processors"]), func(s string) bool { return s == "k8s_attributes" })
		p["exporters"] = []string{"file/" + name}
		if name == "metrics" {
			p["exporters"] = []string{"file/metrics", "prometheus_remote_write"}
		}
	}
	onLoopback(cfg, healthAddr)
	return cfg
}

// waitExportRetry waits until the agent has failed to export signal and queued it for a
// retry: the test's premise that the records wait for the gateway. The exporterhelper logs it.
func (c *collector) waitExportRetry(t *testing.T, signal string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, l := range strings.Split(c.output.String(), "\n") {
			if strings.Contains(l, "Will retry the request") && strings.Contains(l, `"otelcol.signal": "`+signal+`"`) {
				return
			}
		}
	}
	t.Fatalf("the agent logged no failed %s export to retry while the gateway was down", signal)
}

// onLoopback puts the health check on addr and turns self-telemetry off (its port may be taken).
func onLoopback(cfg map[string]any, healthAddr string) {
	cfg["extensions"] = map[string]any{"health_check": map[string]any{"endpoint": healthAddr}}
	cfg["service"].(map[string]any)["telemetry"] = map[string]any{"metrics": map[string]any{"level": "none"}}
}

func toStrings(v any) []string {
	var s []string
	for _, e := range v.([]any) {
		s = append(s, e.(string))
	}
	return s
}
