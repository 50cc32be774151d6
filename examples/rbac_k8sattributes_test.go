package examples

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
)

// The k8s_attributes processor of the agent's and the gateway's example configs, run by the
// collector with examples/rbac.yaml's identity against a real API server, names a pod's
// Deployment: k8s.deployment.name comes from the owning ReplicaSet's name, which needs no
// ReplicaSet rule (an independent review found the rule the examples granted for it unused,
// and the README's reason for the gateway built on it).
func TestExampleRBACNamesDeployments(t *testing.T) {
	netnstest.RequireRoot(t)
	binary := requireCollector(t)
	cluster := kubetest.Start(t)
	kubeconfig := kubetest.ApplyRBAC(t, cluster, "rbac.yaml")
	cluster.Namespace(t, "shop")
	controller := true
	pod := cluster.CreatePod(t, kubetest.Pod{
		Namespace: "shop", Name: "web-5d8f7c9b6-x2k4q", Node: "node-1", IPs: []string{"10.244.1.5"},
		Labels: map[string]string{"pod-template-hash": "5d8f7c9b6"},
		Controller: &metav1.OwnerReference{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c9b6",
			UID: "0b0b0b0b-0000-4000-8000-000000000001", Controller: &controller,
		},
	})
	t.Setenv("K8S_NODE_NAME", "node-1")
	t.Setenv("KUBECONFIG", kubeconfig)
	for _, file := range []string{"kubernetes/collector-config.yaml", "gateway/gateway-config.yaml"} {
		t.Run(file, func(t *testing.T) {
			k8sattr := readYAML(t, file)["processors"].(map[string]any)["k8s_attributes"].(map[string]any)
			k8sattr["auth_type"] = "kubeConfig" // the ServiceAccount's token, as serviceAccount reads it in a pod
			out := filepath.Join(t.TempDir(), "out.jsonl")
			otlpAddr := freeLoopbackAddr(t)
			cfg := writeConfig(t, "config.yaml", map[string]any{
				"receivers":  map[string]any{"otlp": map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": otlpAddr}}}},
				"processors": map[string]any{"k8s_attributes": k8sattr},
				"exporters":  map[string]any{"file": map[string]any{"path": out}},
				"service": map[string]any{
					"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}},
					"pipelines": map[string]any{"logs": map[string]any{
						"receivers": []string{"otlp"}, "processors": []string{"k8s_attributes"}, "exporters": []string{"file"},
					}},
				},
			})
			col := startCollector(t, binary, cfg)
			defer col.stop(t)
			// A record of the pod's, as podnet sends it (k8s.pod.uid on its Resource), until the
			// processor has listed the pod and names its Deployment.
			body := `{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.pod.uid","value":{"stringValue":"` + string(pod.UID) +
				`"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}`
			named := false
			for deadline := time.Now().Add(30 * time.Second); !named && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if resp, err := http.Post("http://"+otlpAddr+"/v1/logs", "application/json", bytes.NewBufferString(body)); err == nil {
					_ = resp.Body.Close()
				}
				b, _ := os.ReadFile(out)
				named = strings.Contains(string(b), `{"key":"k8s.deployment.name","value":{"stringValue":"web"}}`)
			}
			if !named {
				b, _ := os.ReadFile(out)
				t.Fatalf("no k8s.deployment.name web; records: %s\ncollector output:\n%s", b, col.output)
			}
			if strings.Contains(col.output.String(), "forbidden") {
				t.Errorf("the processor was refused something:\n%s", col.output)
			}
		})
	}
}
