//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/processor/processortest"
)

// podnet paces its batches only while a memory_limiter refuses them, which it knows by the
// refusal's text (memoryRefusal; the error is in a package internal to the collector): the real
// processor, over a limit this process is always above, refuses with that text.
func TestMemoryLimiterRefusalIsKnown(t *testing.T) {
	f := memorylimiterprocessor.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"check_interval": "10ms", "limit_mib": 2, "spike_limit_mib": 1,
	}).Unmarshal(cfg))
	p, err := f.CreateLogs(context.Background(), processortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()
	var refusal error
	require.Eventually(t, func() bool {
		refusal = p.ConsumeLogs(context.Background(), plog.NewLogs())
		return refusal != nil
	}, 5*time.Second, 10*time.Millisecond, "the memory_limiter refuses above its limit")
	require.ErrorContains(t, refusal, memoryRefusal)
}
