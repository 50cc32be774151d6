package examples

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The gateway's configuration exists twice (gateway/gateway-config.yaml and the Helm values),
// and the agent's exporter twice (gateway/agent-config.yaml and the Helm overlay); these
// tests keep the copies from drifting apart. make helm-check compares the ConfigMap in
// gateway/gateway.yaml and renders both through the chart.

func TestGatewayHelmValuesCarryGatewayConfig(t *testing.T) {
	want := readYAML(t, "gateway/gateway-config.yaml")
	// The chart writes its own telemetry section (with the same prometheus reader).
	delete(want["service"].(map[string]any), "telemetry")
	got := dropNulls(readYAML(t, "helm/values-gateway.yaml")["config"]).(map[string]any)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("helm/values-gateway.yaml config differs from gateway/gateway-config.yaml (-want +got):\n%s", d)
	}
}

// TestAgentOverlayIsAgentConfig checks what the overlay changes: the otlp_grpc exporter (as
// Helm merges it over values.yaml) and the pipelines' processors and exporters. values.yaml's other
// settings are kept in step with kubernetes/collector-config.yaml by config_test.go.
func TestAgentOverlayIsAgentConfig(t *testing.T) {
	agent := readYAML(t, "gateway/agent-config.yaml")
	merged := mergeValues(readYAML(t, "helm/values.yaml"), readYAML(t, "helm/values-agent-to-gateway.yaml"))
	cfg := merged["config"].(map[string]any)

	want := agent["exporters"].(map[string]any)["otlp_grpc"]
	got := cfg["exporters"].(map[string]any)["otlp_grpc"]
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("otlp_grpc of values.yaml + values-agent-to-gateway.yaml differs from gateway/agent-config.yaml (-want +got):\n%s", d)
	}
	for _, p := range []string{"logs", "metrics"} {
		for _, list := range []string{"processors", "exporters"} {
			want, got := pipeline(agent, p)[list], pipeline(cfg, p)[list]
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s %s of values.yaml + values-agent-to-gateway.yaml differ from gateway/agent-config.yaml (-want +got):\n%s", p, list, d)
			}
		}
	}
}

func pipeline(cfg map[string]any, name string) map[string]any {
	return cfg["service"].(map[string]any)["pipelines"].(map[string]any)[name].(map[string]any)
}

// mergeValues merges src over dst as Helm merges values files: maps key by key, anything
// else (lists included) replaced whole.
func mergeValues(dst, src map[string]any) map[string]any {
	for k, v := range src {
		dm, dok := dst[k].(map[string]any)
		sm, sok := v.(map[string]any)
		if dok && sok {
			dst[k] = mergeValues(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}
