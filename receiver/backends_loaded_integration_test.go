package podnetreceiver

import (
	"context"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
	"github.com/podnet/podnet/receiver/internal/procscan"
)

// The netfilter program that follows Service connections to their backends runs for every
// packet through the node's netfilter hooks: it is loaded only where something podnet emits can
// carry a backend (a client's connect or close records, or metrics split by backend). A
// metrics-only podnet at the defaults loaded it for nothing (found by an independent check).
func TestServiceBackendsLoadedOnlyWhereEmitted(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name        string
		logs        bool
		metricAttr  bool
		wantNetfilt bool
	}{
		{"metrics only", false, false, false},
		{"metrics split by backend", false, true, true},
		{"logs", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			cfg.ServiceBackends.MetricAttribute = tc.metricAttr
			// The node's namespace by kthreadd's link, not /proc/self's: that one is the main
			// thread's, which a test beside this one may have moved into a pod's namespace.
			cfg.ServiceBackends.NodeNetns = procscan.HostNetnsLink("/proc")
			core, said := observer.New(zap.InfoLevel)
			set := receivertest.NewNopSettings(metadata.Type)
			set.Logger = zap.New(core)
			f := NewFactory()
			var started []any
			if tc.logs {
				lr, err := f.CreateLogs(context.Background(), set, cfg, new(consumertest.LogsSink))
				require.NoError(t, err)
				require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
				t.Cleanup(func() { require.NoError(t, lr.Shutdown(context.Background())) })
				started = append(started, lr)
			} else {
				mr, err := f.CreateMetrics(context.Background(), set, cfg, new(consumertest.MetricsSink))
				require.NoError(t, err)
				require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
				t.Cleanup(func() { require.NoError(t, mr.Shutdown(context.Background())) })
				started = append(started, mr)
			}
			netfilter := 0
			for _, id := range loadedPrograms(t, started[0]) {
				p, err := ebpf.NewProgramFromID(id)
				require.NoError(t, err)
				info, err := p.Info()
				require.NoError(t, err)
				if info.Type == ebpf.Netfilter {
					netfilter++
				}
				require.NoError(t, p.Close())
			}
			var lines []string
			for _, e := range said.All() {
				lines = append(lines, fmt.Sprintf("%s %v", e.Message, e.ContextMap()))
			}
			assert.Equal(t, tc.wantNetfilt, netfilter > 0, "netfilter programs loaded: %d; Start said %q", netfilter, lines)
			assert.Equal(t, !tc.wantNetfilt, said.FilterMessageSnippet("service_backends not loaded").Len() == 1, "said why not, once")
		})
	}
}
