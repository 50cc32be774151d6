package podnetreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/podnet/podnet/internal/metadata"
)

func newFixtureMetrics(cfg *Config) *connectionMetrics {
	return newConnectionMetrics(cfg, fixtureSettings)
}

// fixtureBatch is fixtureEvents attributed as the reader would.
func fixtureBatch(cfg *Config) []enrichedEvent {
	return enrichAll(fixtureResources(cfg), fixtureEvents())
}

func TestConnectionMetricsGolden(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	// Twice: the sums are cumulative.
	assert.Zero(t, m.add(fixtureBatch(cfg)))
	assert.Zero(t, m.add(fixtureBatch(cfg)))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))

	path := filepath.Join("testdata", "golden", "metrics.yaml")
	if *update {
		require.NoError(t, golden.WriteMetrics(t, path, md))
	}
	want, err := golden.ReadMetrics(path)
	require.NoError(t, err)
	require.NoError(t, pmetrictest.CompareMetrics(want, md,
		pmetrictest.IgnoreStartTimestamp(), pmetrictest.IgnoreTimestamp(),
		pmetrictest.IgnoreResourceMetricsOrder(), pmetrictest.IgnoreMetricsOrder(),
		pmetrictest.IgnoreMetricDataPointsOrder()))
}

func TestConnectionMetricsDropAttributesForCardinality(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Metrics.PodnetTCPConnections.EnabledAttributes = []metadata.PodnetTCPConnectionsMetricAttributeKey{"podnet.connection.role", "server.port"}
	m := newFixtureMetrics(cfg)
	m.add(fixtureBatch(cfg))
	md := m.emit(pcommon.NewTimestampFromTime(time.Now()))
	for _, dp := range dataPoints(md, "podnet.tcp.connections") {
		_, hasPeer := dp.Attributes().Get("network.peer.address")
		assert.False(t, hasPeer, "peer address is configured off")
	}
}

func TestConnectionMetricsSeriesAreBounded(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MaxMetricSeries = 2
	m := newFixtureMetrics(cfg)
	// Seven events in five series (connect and close of one connection share a series): the
	// first two series take three events.
	assert.Equal(t, int64(4), m.add(fixtureBatch(cfg)))
	assert.Len(t, m.series, 2)
}

func TestConnectionMetricsForgetIdleSeries(t *testing.T) {
	cfg := NewDefaultConfig()
	m := newFixtureMetrics(cfg)
	m.add(fixtureBatch(cfg))
	later := pcommon.NewTimestampFromTime(time.Now().Add(cfg.MetricSeriesIdleExpiry + time.Minute))
	md := m.emit(later)
	assert.Zero(t, md.DataPointCount())
	assert.Empty(t, m.series)
}

func dataPoints(md pmetric.Metrics, name string) []pmetric.NumberDataPoint {
	var out []pmetric.NumberDataPoint
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		ms := md.ResourceMetrics().At(i).ScopeMetrics().At(0).Metrics()
		for j := 0; j < ms.Len(); j++ {
			if ms.At(j).Name() != name {
				continue
			}
			for k := 0; k < ms.At(j).Sum().DataPoints().Len(); k++ {
				out = append(out, ms.At(j).Sum().DataPoints().At(k))
			}
		}
	}
	return out
}
