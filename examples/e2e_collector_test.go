package examples

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const collectorBinary = "../bin/otelcol-podnet"

// requireCollector returns the binary `make otelcol` builds. CI builds it before the tests,
// so there a missing binary is a failure; elsewhere the test skips and says how to run it.
func requireCollector(t *testing.T) string {
	t.Helper()
	if bin, err := os.ReadFile(collectorBinary); err == nil {
		requireCurrentPrograms(t, bin)
		return collectorBinary
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: run make otelcol first", collectorBinary)
	}
	t.Skipf("SKIP: %s is missing: run make otelcol first to test the collector end to end", collectorBinary)
	return ""
}

// requireCurrentPrograms fails when the binary was built before the BPF programs last changed:
// it embeds bpf2go's object verbatim, so an older binary would test older programs.
func requireCurrentPrograms(t *testing.T, bin []byte) {
	t.Helper()
	arch := map[string]string{"amd64": "x86", "arm64": "arm64"}[runtime.GOARCH]
	obj, err := os.ReadFile(filepath.Join("..", "bpf", "podnet_"+arch+"_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bin, obj) {
		t.Fatalf("%s embeds other BPF programs than bpf/ holds (built before they changed): run make otelcol", collectorBinary)
	}
}

// collectorConfig is examples/local/config.yaml with its exporters swapped for otlp_grpc to the
// sink, a health_check extension, metrics every second, and no self-telemetry endpoint (its
// default port may be taken on a shared machine).
func collectorConfig(t *testing.T, sinkAddr, healthAddr string) string {
	t.Helper()
	return writeConfig(t, "config.yaml", collectorConfigMap(t, sinkAddr, healthAddr))
}

// collectorConfigMap is collectorConfig before it is written, for a test to add to.
func collectorConfigMap(t *testing.T, sinkAddr, healthAddr string) map[string]any {
	t.Helper()
	cfg := readYAML(t, "local/config.yaml")
	cfg["receivers"].(map[string]any)["podnet"].(map[string]any)["metrics_interval"] = "1s"
	cfg["exporters"] = map[string]any{"otlp_grpc": map[string]any{
		"endpoint": sinkAddr, "tls": map[string]any{"insecure": true},
	}}
	cfg["extensions"] = map[string]any{"health_check": map[string]any{"endpoint": healthAddr}}
	service := cfg["service"].(map[string]any)
	service["extensions"] = []string{"health_check"}
	service["telemetry"] = map[string]any{"metrics": map[string]any{"level": "none"}}
	for _, p := range service["pipelines"].(map[string]any) {
		p.(map[string]any)["exporters"] = []string{"otlp_grpc"}
	}
	return cfg
}

// syncBuffer collects the collector's output, written by exec's copying goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// collector is a running otelcol-podnet process.
type collector struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan error
}

func startCollector(t *testing.T, binary, config string) *collector {
	t.Helper()
	c := &collector{cmd: exec.Command(binary, "--config="+config), output: new(syncBuffer), done: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.output, c.output
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("otelcol-podnet output:\n%s", c.output)
		}
	})
	return c
}

// waitHealthy polls the health_check endpoint until it answers 200 with the extension's
// "Server available" status: every component, podnet included, has started.
func (c *collector) waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-c.done:
			t.Fatalf("otelcol-podnet exited before becoming healthy: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			var body struct {
				Status string `json:"status"`
			}
			decodeErr := json.NewDecoder(resp.Body).Decode(&body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && decodeErr == nil && body.Status == "Server available" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("health_check at %s never reported healthy (last error %v)", addr, err)
		}
		// Polls the condition; a loop rather than require.Eventually so that a collector that
		// exits fails the test at once, with its output.
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit within the collector's shutdown budget.
func (c *collector) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("otelcol-podnet did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("otelcol-podnet still running 30s after SIGTERM")
	}
}

func writeConfig(t *testing.T, name string, cfg map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
