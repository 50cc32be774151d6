package examples

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/netnstest"
)

// TestFanOutWithADeadExporterStillFeedsTheHealthyOne runs otelcol-podnet with podnet feeding two
// logs pipelines, one to the OTLP sink and one to an OTLP exporter whose backend is down (no
// queue, no retry: every batch fails at once). The collector's fan-out answers each batch with
// the dead one's error; the healthy pipeline must still get every record. Found by an
// independent check: podnet held batches back as it does while a memory_limiter refuses, and a
// healthy file exporter got 435 of 1,640 records.
func TestFanOutWithADeadExporterStillFeedsTheHealthyOne(t *testing.T) {
	netnstest.RequireRoot(t)
	binary := requireCollector(t)
	sink := startSink(t)
	healthAddr := freeLoopbackAddr(t)
	cfg := collectorConfigMap(t, sink.addr, healthAddr)
	cfg["exporters"].(map[string]any)["otlp_grpc/down"] = map[string]any{
		"endpoint": freeLoopbackAddr(t), "tls": map[string]any{"insecure": true}, "timeout": "1s",
		"sending_queue": map[string]any{"enabled": false}, "retry_on_failure": map[string]any{"enabled": false},
	}
	cfg["service"].(map[string]any)["pipelines"].(map[string]any)["logs/down"] = map[string]any{
		"receivers": []string{"podnet"}, "exporters": []string{"otlp_grpc/down"},
	}
	// Only this test's connections reach the ring: go test runs other packages' tests beside
	// this one, and their traffic once filled the ring in CI (lost, counted: 48 of 60
	// connections), which says nothing of the fan-out.
	netw := netnstest.NewNetwork(t, 46)
	client, server := netw.AddPod(), netw.AddPod()
	cfg["receivers"].(map[string]any)["podnet"].(map[string]any)["exclude"] = map[string]any{
		"peer_cidrs": prefixStrings(netnstest.AllPeersBut(netip.PrefixFrom(client.IPv4, 24).Masked())),
	}
	col := startCollector(t, binary, writeConfig(t, "config.yaml", cfg))
	col.waitHealthy(t, healthAddr)

	// Connections spread over 3 s, so that they come in many batches (one per poll, 100 ms).
	addr := netip.AddrPortFrom(server.IPv4, httpPort)
	server.AcceptAll(t, addr, nil)
	const connections = 60
	if err := client.Do(func() error {
		for range connections {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				return err
			}
			_ = c.Close()
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	inodes := []int64{int64(client.NetnsInode()), int64(server.NetnsInode())}
	count := func() (connects, accepts, closes int) {
		recs, _ := podnetRecords(sink.logs.AllLogs(), inodes)
		for _, r := range recs {
			switch r.Event {
			case "podnet.tcp.connect":
				connects++
			case "podnet.tcp.accept":
				accepts++
			case "podnet.tcp.close":
				closes++
			}
		}
		return connects, accepts, closes
	}
	deadline := time.Now().Add(20 * time.Second)
	for c, a, cl := count(); (c < connections || a < connections || cl < 2*connections) && time.Now().Before(deadline); c, a, cl = count() {
		time.Sleep(100 * time.Millisecond)
	}
	col.stop(t)
	if c, a, cl := count(); c != connections || a != connections || cl != 2*connections {
		t.Errorf("the healthy pipeline got %d connect, %d accept and %d close records; want %d, %d and %d",
			c, a, cl, connections, connections, 2*connections)
	}
}

// prefixStrings is prefixes as a configuration writes them.
func prefixStrings(prefixes []netip.Prefix) []string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = p.String()
	}
	return out
}
