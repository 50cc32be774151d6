//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Two podnet receivers in one collector keep their own counts: each otelcol_podnet_* series is
// labelled with its receiver, as the collector's receiver metrics are (found by an independent
// check: they added up into one unlabelled series).
func TestSelfTelemetryNamesItsReceiver(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	want := map[string]int64{"podnet/a": 3, "podnet/b": 5}
	for name, n := range want {
		logs := new(consumertest.LogsSink)
		f := newFakeReceiver(t, NewDefaultConfig(), newFakeRing(connects(int(n))...), logs, nil)
		f.set.ID = component.MustNewIDWithName("podnet", name[len("podnet/"):])
		f.set.TelemetrySettings = tt.NewTelemetrySettings()
		f.start(t)
		require.Eventually(t, func() bool { return int64(logs.LogRecordCount()) == n }, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, f.Shutdown(context.Background()))
	}
	m, err := tt.GetMetric("otelcol_podnet_events_received")
	require.NoError(t, err)
	got := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		id, ok := dp.Attributes.Value(receiverKey)
		require.True(t, ok, "every point names its receiver: %v", dp.Attributes)
		got[id.AsString()] += dp.Value
	}
	assert.Equal(t, want, got)
}
