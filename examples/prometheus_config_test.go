package examples

import (
	"testing"
)

// prometheusCollectorConfig is podnet as the DaemonSet runs it, metrics only, exporting with
// the very `prometheus` exporter block of kubernetes/collector-config.yaml (on a loopback
// port), names from the test's API server, metrics every second, a health_check extension.
func prometheusCollectorConfig(t *testing.T, nodeName, kubeconfig, exporterAddr, healthAddr string) string {
	t.Helper()
	exporter := readYAML(t, "kubernetes/collector-config.yaml")["exporters"].(map[string]any)["prometheus"].(map[string]any)
	exporter["endpoint"] = exporterAddr
	cfg := map[string]any{
		"receivers": map[string]any{"podnet": map[string]any{
			"node_name":        nodeName,
			"metrics_interval": "1s",
			"kubernetes":       map[string]any{"auth_type": "kubeConfig", "kubeconfig": kubeconfig},
			// The opt-in service graph, for Grafana's service graph view.
			"metrics": map[string]any{
				"traces_service_graph_request_total":        map[string]any{"enabled": true},
				"traces_service_graph_request_failed_total": map[string]any{"enabled": true},
			},
		}},
		"exporters":  map[string]any{"prometheus": exporter},
		"extensions": map[string]any{"health_check": map[string]any{"endpoint": healthAddr}},
		"service": map[string]any{
			"extensions": []string{"health_check"},
			"telemetry":  map[string]any{"metrics": map[string]any{"level": "none"}},
			"pipelines": map[string]any{"metrics": map[string]any{
				"receivers": []string{"podnet"}, "exporters": []string{"prometheus"},
			}},
		},
	}
	return writeConfig(t, "config.yaml", cfg)
}

// prometheusConfig is examples/prometheus/prometheus.yml scraping every second. This
// Prometheus (Debian's) is built without Kubernetes discovery, so the targets are given
// statically, each with the metadata labels pod discovery would attach to the collector pod's
// two container ports: the example's relabelling then runs for real and must keep only the
// exporter's port.
func prometheusConfig(t *testing.T, exporterAddr, selfTelemetryAddr string) map[string]any {
	t.Helper()
	cfg := readYAML(t, "prometheus/prometheus.yml")
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
	job := cfg["scrape_configs"].([]any)[0].(map[string]any)
	if _, ok := job["kubernetes_sd_configs"]; !ok {
		t.Fatal("prometheus/prometheus.yml: the podnet job has no kubernetes_sd_configs")
	}
	delete(job, "kubernetes_sd_configs")
	target := func(addr, port string) map[string]any {
		return map[string]any{"targets": []string{addr}, "labels": map[string]string{
			"__meta_kubernetes_pod_name":                         "podnet-x7k2p",
			"__meta_kubernetes_pod_container_port_name":          port,
			"__meta_kubernetes_pod_label_app_kubernetes_io_name": "podnet",
		}}
	}
	job["static_configs"] = []any{target(exporterAddr, "prometheus"), target(selfTelemetryAddr, "metrics")}
	return cfg
}
