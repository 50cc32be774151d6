package examples

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// The Kubernetes configuration exists three times (collector-config.yaml, the ConfigMap in
// daemonset.yaml, the Helm values); these tests keep the copies from drifting apart.

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func TestDaemonSetConfigMapIsCollectorConfig(t *testing.T) {
	want, err := os.ReadFile("kubernetes/collector-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	// The ConfigMap is the first document; the decoder stops there.
	if err := yaml.NewDecoder(strings.NewReader(string(b))).Decode(&cm); err != nil || cm.Kind != "ConfigMap" {
		t.Fatalf("daemonset.yaml: first document is not a ConfigMap (%q, %v)", cm.Kind, err)
	}
	if d := cmp.Diff(withoutComments(string(want)), withoutComments(cm.Data["config.yaml"])); d != "" {
		t.Errorf("daemonset.yaml ConfigMap differs from collector-config.yaml (-want +got):\n%s", d)
	}
}

func TestHelmValuesCarryCollectorConfig(t *testing.T) {
	want := readYAML(t, "kubernetes/collector-config.yaml")
	// The chart writes its own telemetry section (with the same prometheus reader).
	delete(want["service"].(map[string]any), "telemetry")
	got := dropNulls(readYAML(t, "helm/values.yaml")["config"]).(map[string]any)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("helm/values.yaml config differs from kubernetes/collector-config.yaml (-want +got):\n%s", d)
	}
}

// dropNulls removes the `key: null` entries that delete the chart's default components.
func dropNulls(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, e := range m {
		if e == nil {
			delete(m, k)
		} else {
			m[k] = dropNulls(e)
		}
	}
	return m
}

func withoutComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}
