package examples

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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
	binary := requireCollector(t)
	netnstest.RequireRoot(t)
	sink := startSink(t)
	healthAddr := freeLoopbackAddr(t)
	col := startCollector(t, binary, collectorConfig(t, sink.addr, healthAddr))
	col.waitHealthy(t, healthAddr)
	held := heldPodnetPrograms(t, col.cmd.Process.Pid)
	heldNames := slices.Sorted(maps.Values(held))
	for _, want := range []string{"enter_connect", "exit_accept", "exit_accept4", "exit_connect"} {
		if !slices.Contains(heldNames, want) {
			t.Fatalf("healthy collector holds podnet programs %v, missing %s", heldNames, want)
		}
	}

	netw := netnstest.NewNetwork(t, 90)
	client, server := netw.AddPod(), netw.AddPod()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the server pod\n"), 0o644); err != nil {
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

	ci, si := int64(client.NetnsInode()), int64(server.NetnsInode())
	inodes := []int64{ci, si}
	cIP, sIP := client.IPv4.String(), server.IPv4.String()
	wantRecords := []connRecord{{
		Inode: ci, Event: "podnet.tcp.connect", Severity: "Warn", Role: "client", Local: cIP, Peer: sIP,
		PeerPort: closedPort, Pid: int64(refused.Pid), Executable: "curl", Error: "ECONNREFUSED",
		LocalPort: -1, // any ephemeral port: set from what podnet reports, below
	}}
	wantSums := map[string]int64{
		seriesKey(ci, "podnet.tcp.connections", "client", sIP, closedPort, "ECONNREFUSED"): 1,
		seriesKey(ci, "podnet.tcp.retransmits", "client", sIP, httpPort, ""):               0,
		seriesKey(si, "podnet.tcp.retransmits", "server", cIP, httpPort, ""):               0,
	}
	for _, f := range fetches {
		client := connRecord{Inode: ci, Severity: "Info", Role: "client", Local: cIP, LocalPort: f.LocalPort,
			Peer: sIP, PeerPort: httpPort, Pid: int64(f.Pid), Executable: "curl"}
		server := connRecord{Inode: si, Severity: "Info", Role: "server", Local: sIP, LocalPort: httpPort,
			Peer: cIP, PeerPort: f.LocalPort, Pid: int64(serverPid), Executable: "python3"}
		clientClose, serverClose := client, server
		clientClose.Sent, clientClose.Received = f.RequestBytes, f.ResponseBytes
		serverClose.Sent, serverClose.Received = f.ResponseBytes, f.RequestBytes
		client.Event, server.Event = "podnet.tcp.connect", "podnet.tcp.accept"
		clientClose.Event, serverClose.Event = "podnet.tcp.close", "podnet.tcp.close"
		wantRecords = append(wantRecords, client, server, clientClose, serverClose)

		for _, side := range []struct {
			inode      int64
			role, peer string
			sent, recv int64
		}{{ci, "client", sIP, f.RequestBytes, f.ResponseBytes}, {si, "server", cIP, f.ResponseBytes, f.RequestBytes}} {
			wantSums[seriesKey(side.inode, "podnet.tcp.connections", side.role, side.peer, httpPort, "")]++
			wantSums[seriesKey(side.inode, "podnet.tcp.connections.closed", side.role, side.peer, httpPort, "")]++
			wantSums[seriesKey(side.inode, "podnet.tcp.bytes_sent", side.role, side.peer, httpPort, "")] += side.sent
			wantSums[seriesKey(side.inode, "podnet.tcp.bytes_received", side.role, side.peer, httpPort, "")] += side.recv
		}
	}

	// Logs arrive within a poll interval and an export; cumulative metrics reach their final
	// values within a metrics interval or two.
	var gotRecords []connRecord
	var timings []closeTiming
	var gotSums map[string]int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		gotRecords, timings = podnetRecords(sink.logs.AllLogs(), inodes)
		gotSums = latestSums(sink.metrics.AllMetrics(), inodes)
		if len(gotRecords) >= len(wantRecords) && cmp.Equal(wantSums, gotSums) {
			break
		}
	}
	// curl cannot report the ephemeral port of a refused connect; podnet can.
	for _, r := range gotRecords {
		if r.Error != "" && r.LocalPort >= 1024 && r.LocalPort <= 65535 {
			wantRecords[0].LocalPort = r.LocalPort
		}
	}
	byAll := cmpopts.SortSlices(func(a, b connRecord) bool { return fmt.Sprint(a) < fmt.Sprint(b) })
	if d := cmp.Diff(wantRecords, gotRecords, byAll); d != "" {
		t.Errorf("podnet log records of the two pods (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantSums, gotSums); d != "" {
		t.Errorf("podnet metric values of the two pods (-want +got):\n%s", d)
	}
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
