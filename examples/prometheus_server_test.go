package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/podnet/podnet/internal/promapi"
)

// requireBinary finds a program a test runs. make setup installs them; in CI a missing one
// fails the test, elsewhere it skips and says how to get it.
func requireBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: make setup installs it (apt-get install %s)", name, pkg)
	}
	t.Skipf("SKIP: %s not found: apt-get install %s (or make setup) to run this test", name, pkg)
	return ""
}

// prometheus is a real Prometheus server on a loopback port, with its own storage, killed at
// test end.
type prometheus struct {
	url    string
	client *http.Client
}

func startPrometheus(t *testing.T, config map[string]any, flags ...string) *prometheus {
	t.Helper()
	bin := requireBinary(t, "prometheus", "prometheus")
	dir := t.TempDir()
	b, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(bin, append([]string{
		"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
	}, flags...)...)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Closed when Prometheus has exited, with waitErr set: the start loop and the cleanup both
	// wait on it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	p := &prometheus{url: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start: %v\n%s", waitErr, out)
		default:
		}
		if resp, err := p.client.Get(p.url + "/-/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30s:\n%s", addr, out)
		}
	}
}

// values evaluates promql now: each series' value by its labels, formatted as PromQL prints
// them ({a="x", b="y"}; {} for a series without labels).
func (p *prometheus) values(t *testing.T, promql string) map[string]float64 {
	t.Helper()
	samples, err := promapi.Query(context.Background(), p.client, p.url, promql)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		got[labelString(s.Labels)] = s.Value
	}
	return got
}

func labelString(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

// dump logs every series of podnet's connection counter, for a failed test.
func (p *prometheus) dump(t *testing.T) {
	t.Helper()
	samples, err := promapi.Query(context.Background(), p.client, p.url, `podnet_tcp_connections_total{k8s_pod_name!=""}`)
	if err != nil {
		t.Logf("prometheus: %v", err)
		return
	}
	var lines []string
	for _, s := range samples {
		lines = append(lines, fmt.Sprintf("  %s %g", labelString(s.Labels), s.Value))
	}
	slices.Sort(lines)
	t.Logf("prometheus has podnet_tcp_connections_total{k8s_pod_name!=\"\"}:\n%s", strings.Join(lines, "\n"))
}

// activeTargets lists the scrape URLs and labels of the targets Prometheus scrapes, and how
// many it dropped by relabelling.
func (p *prometheus) activeTargets(t *testing.T) (active map[string]map[string]string, dropped int) {
	t.Helper()
	resp, err := p.client.Get(p.url + "/api/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Active []struct {
				ScrapeURL string            `json:"scrapeUrl"`
				Labels    map[string]string `json:"labels"`
			} `json:"activeTargets"`
			Dropped []any `json:"droppedTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	active = map[string]map[string]string{}
	for _, a := range r.Data.Active {
		active[a.ScrapeURL] = a.Labels
	}
	return active, len(r.Data.Dropped)
}
