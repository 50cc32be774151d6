package podnetreceiver

import (
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
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
