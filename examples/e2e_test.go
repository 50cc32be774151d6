package examples

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

const (
	httpPort    = 8080
	closedPort  = 8081 // nothing listens: connects are refused
	httpFetches = 3
)

// TestCollectorEndToEnd runs the otelcol-podnet binary as a user would (examples/local with an
// OTLP exporter), drives curl → python http.server traffic between two namespace pods plus
// one refused connect, and checks what reaches an OTLP backend, record by record and value by
// value; then that SIGTERM stops it cleanly and unloads its BPF programs.
func TestCollectorEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	binary := requireCollector(t)
	sink := startSink(t)
	healthAddr := freeLoopbackAddr(t)
	col := startCollector(t, binary, collectorConfig(t, sink.addr, healthAddr))
	col.waitHealthy(t, healthAddr)
	held := heldPodnetPrograms(t, col.cmd.Process.Pid)
	heldNames := slices.Sorted(maps.Values(held))
	// Each syscall hook, in either of its variants (the accept hook has two, see bpf/sock.h).
	for _, want := range [][]string{
		{bpf.PodnetProgEnterConnect},
		{bpf.PodnetProgExitConnect},
		{bpf.PodnetProgExitAccept, bpf.PodnetProgAcceptCast},
		{bpf.PodnetProgExitAccept4, bpf.PodnetProgAccept4Cast},
	} {
		if !slices.ContainsFunc(want, func(n string) bool { return slices.Contains(heldNames, n) }) {
			t.Fatalf("healthy collector holds podnet programs %v, missing %s", heldNames, strings.Join(want, " or "))
		}
	}

	inodes, wantRecords, wantSums := driveHTTP(t, 90, "hello from the server pod\n")

	// Logs arrive within a poll interval and an export; cumulative metrics reach their final
	// values within a metrics interval or two.
	timings := expectOutput(t, "", 30*time.Second, 250*time.Millisecond,
		func() ([]plog.Logs, []pmetric.Metrics) { return sink.logs.AllLogs(), sink.metrics.AllMetrics() },
		inodes, wantRecords, wantSums)
	for _, tm := range timings {
		if tm.Duration <= 0 || tm.RTT <= 0 {
			t.Errorf("close record with duration %vs, rtt %vs; want both > 0", tm.Duration, tm.RTT)
		}
	}

	col.stop(t)
	for id, name := range loadedPrograms(t) {
		if _, ours := held[id]; ours {
			t.Errorf("BPF program %s (id %d) still loaded after otelcol-podnet exited", name, id)
		}
	}
}

// driveHTTP makes the examples' known traffic between two namespace pods of subnet: curl
// fetches a file from python's http.server httpFetches times, then one connect is refused;
// and returns the pods' namespaces with the records and sums that must come of it.
func driveHTTP(t *testing.T, subnet byte, content string) (inodes []int64, records []connRecord, sums map[string]int64) {
	t.Helper()
	netw := netnstest.NewNetwork(t, subnet)
	client, server := netw.AddPod(), netw.AddPod()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	serverPid := server.StartHTTPServer(t, dir, httpPort)
	var fetches []netnstest.CurlResult
	for range httpFetches {
		r := client.Curl(t, server.IPv4, httpPort, "/hello.txt")
		if r.ExitCode != 0 {
			t.Fatalf("curl exited %d", r.ExitCode)
		}
		fetches = append(fetches, r)
	}
	refused := client.Curl(t, server.IPv4, closedPort, "/")
	if refused.ExitCode != 7 {
		t.Fatalf("curl to a closed port exited %d, want 7 (failed to connect)", refused.ExitCode)
	}
	records, sums = expected(client, server, serverPid, fetches, refused)
	return []int64{int64(client.NetnsInode()), int64(server.NetnsInode())}, records, sums
}
