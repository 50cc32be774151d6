//go:build k8sscale

package k8smeta

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/kubetest"
)

// The agent process of make bench-k8s-scale: TestClusterScale runs this test binary again
// with agentKubeconfigEnv set, so the Store is alone in its process and its RSS is its own.
const (
	agentKubeconfigEnv = "PODNET_SCALE_AGENT_KUBECONFIG"
	agentWatchListEnv  = "PODNET_SCALE_AGENT_WATCHLIST" // "1": watchListStore instead of the Store
	agentReplyPrefix   = "podnet-scale-agent: "
)

// agentSample is what the agent reports, one JSON line per command.
type agentSample struct {
	Synced          bool
	SyncMillis      int64
	BaseRSS         uint64 // before the Store existed: the test binary's own
	RSS, HWM        uint64
	HeapAlloc       uint64 // after a GC (sample command only)
	HeapSys         uint64
	BodyBytes, Wire int64
	WatchLists      int64 // requests with sendInitialEvents: streamed, not listed
}

// TestScaleAgent runs the Store as node-0001's agent and answers commands on stdin:
// "sample" (GC, memory and bytes), "wait <ip>" (until that pod IP is named; bytes only, no GC,
// so the caller's CPU reading holds no collection it caused). EOF stops it.
func TestScaleAgent(t *testing.T) {
	kubeconfig := os.Getenv(agentKubeconfigEnv)
	if kubeconfig == "" {
		t.Skip("the agent process of TestClusterScale (make bench-k8s-scale), not a test of its own")
	}
	var out agentSample
	out.BaseRSS, _, _ = procMemory(os.Getpid())
	cfg, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: kubeconfig}.RESTConfig()
	require.NoError(t, err)
	var meter byteMeter
	meter.instrument(cfg)
	// A passing agent ends after the store has stopped (deferred first, run last), before
	// TestMain's goleak check: with the API server still up, an HTTP/2 connection of the
	// Store's outlives Stop (the other tests stop the API server first, which closes it).
	defer func() {
		if !t.Failed() {
			os.Exit(0)
		}
	}()
	start := time.Now()
	var named func(netip.Addr) bool
	if os.Getenv(agentWatchListEnv) == "1" {
		s, err := newWatchListStore(cfg, kubetest.NodeName(0))
		require.NoError(t, err)
		defer s.stop()
		out.Synced, named = s.start(5*time.Minute), s.named
	} else {
		s, err := NewStore(cfg, Options{NodeName: kubetest.NodeName(0), SyncTimeout: 5 * time.Minute})
		require.NoError(t, err)
		defer s.Stop()
		out.Synced = s.Start()
		named = func(a netip.Addr) bool { _, ok := s.PeerByIP(a); return ok }
	}
	out.SyncMillis = time.Since(start).Milliseconds()

	reply := func(gc bool) {
		if gc {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			out.HeapAlloc, out.HeapSys = m.HeapAlloc, m.HeapSys
		}
		out.RSS, out.HWM, _ = procMemory(os.Getpid())
		out.BodyBytes, out.Wire, out.WatchLists = meter.body.Load(), meter.wire.Load(), meter.watchLists.Load()
		line, _ := json.Marshal(out)
		fmt.Printf("%s%s\n", agentReplyPrefix, line)
	}
	reply(true)
	for in := bufio.NewScanner(os.Stdin); in.Scan(); {
		var ip string
		switch _, err := fmt.Sscanf(in.Text(), "wait %s", &ip); err {
		case nil:
			addr := netip.MustParseAddr(ip)
			for !named(addr) {
				time.Sleep(10 * time.Millisecond)
			}
			reply(false)
		default:
			reply(true)
		}
	}
}
