package podnetreceiver

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/podnet/podnet/receiver/internal/event"
)

func TestEventsToLogsGolden(t *testing.T) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "test")
	ld, n := c.convert(enrichAll(fixtureResources(cfg), fixtureEvents()), pcommon.Timestamp(t0+5_000_000))
	assert.Equal(t, 7, n)

	path := filepath.Join("testdata", "golden", "logs.yaml")
	if *update {
		require.NoError(t, golden.WriteLogs(t, path, ld))
	}
	want, err := golden.ReadLogs(path)
	require.NoError(t, err)
	require.NoError(t, plogtest.CompareLogs(want, ld))
}

func TestDisabledEventsAreNotConverted(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Events.PodnetTCPConnect.Enabled = false
	c := newLogsConverter(cfg.Events, "test")
	ld, n := c.convert(enrichAll(fixtureResources(cfg), fixtureEvents()), 0)
	assert.Equal(t, 3, n, "the accept and the two closes")
	assert.Equal(t, 3, ld.LogRecordCount())
}

// A connect that failed before its SYN (no route) has no local end but what its socket was
// bound to: an unspecified address or port 0 is left out, not reported as 0.0.0.0:0 (found by an
// independent check against semconv's "local address of the network connection").
func TestAConnectThatFailedBeforeItsSYNHasNoLocalEnd(t *testing.T) {
	cfg := NewDefaultConfig()
	c := newLogsConverter(cfg.Events, "test")
	for _, local := range []string{"0.0.0.0:0", "[::]:0", "0.0.0.0:5555", "10.0.0.7:0"} {
		e := enrichedEvent{Event: event.Event{
			Type: event.Connect, Role: event.Client, Errno: 113, // EHOSTUNREACH
			Local: netip.MustParseAddrPort(local), Peer: netip.MustParseAddrPort("10.0.0.9:80"),
		}}
		lr := plog.NewLogRecord()
		c.record(lr, &e, pcommon.Timestamp(t0))
		addr, hasAddr := lr.Attributes().Get("network.local.address")
		port, hasPort := lr.Attributes().Get("network.local.port")
		assert.Equal(t, !e.Local.Addr().IsUnspecified(), hasAddr, local)
		assert.Equal(t, e.Local.Port() != 0, hasPort, local)
		if hasAddr {
			assert.Equal(t, "10.0.0.7", addr.Str())
		}
		if hasPort {
			assert.Equal(t, int64(5555), port.Int())
		}
		assert.Equal(t, lr.Attributes().Len(), attributeCount(&e), local)
	}
}
