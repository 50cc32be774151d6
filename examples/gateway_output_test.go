package examples

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// gatewayOutput is what the gateway's file exporters wrote: one OTLP JSON export per line.
type gatewayOutput struct {
	logs    []plog.Logs
	metrics []pmetric.Metrics
}

// readGatewayOutput reads the complete lines written so far; the last one may still be half
// written, so only newline-terminated lines are parsed, and each must parse.
func readGatewayOutput(t *testing.T, dir string) gatewayOutput {
	t.Helper()
	var out gatewayOutput
	for _, line := range completeLines(t, filepath.Join(dir, "logs.jsonl")) {
		ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(line)
		if err != nil {
			t.Fatalf("gateway logs output: %v: %s", err, line)
		}
		out.logs = append(out.logs, ld)
	}
	for _, line := range completeLines(t, filepath.Join(dir, "metrics.jsonl")) {
		md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(line)
		if err != nil {
			t.Fatalf("gateway metrics output: %v: %s", err, line)
		}
		out.metrics = append(out.metrics, md)
	}
	return out
}

func completeLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(b, []byte("\n"))
	return lines[:len(lines)-1] // after the last newline: empty or unfinished
}

// nodeNames lists the distinct k8s.node.name of the resources of the namespaces in inodes.
func (o gatewayOutput) nodeNames(inodes []int64) []string {
	var names []string
	add := func(a pcommon.Map) {
		if slices.Contains(inodes, intAttr(a, "podnet.netns.inode")) && !slices.Contains(names, strAttr(a, "k8s.node.name")) {
			names = append(names, strAttr(a, "k8s.node.name"))
		}
	}
	for _, ld := range o.logs {
		for _, rl := range ld.ResourceLogs().All() {
			add(rl.Resource().Attributes())
		}
	}
	for _, md := range o.metrics {
		for _, rm := range md.ResourceMetrics().All() {
			add(rm.Resource().Attributes())
		}
	}
	return names
}
