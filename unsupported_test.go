//go:build linux && (amd64 || arm64)

package podnet

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	podnetreceiver "github.com/podnet/podnet/receiver"
)

// A multi-platform distribution's config must mean the same everywhere: the unsupported
// factory reads testdata/config.yaml into the very Config the Linux one does, and refuses
// what it refuses.
func TestUnsupportedFactoryTakesTheSameConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub("podnet")
	require.NoError(t, err)
	linux, other := podnetreceiver.NewFactory(), unsupportedFactory("darwin", "arm64")
	assert.Equal(t, linux.Type(), other.Type())
	assert.Equal(t, linux.LogsStability(), other.LogsStability())
	assert.Equal(t, linux.MetricsStability(), other.MetricsStability())

	want, got := linux.CreateDefaultConfig(), other.CreateDefaultConfig()
	assert.Equal(t, want, got, "defaults")
	require.NoError(t, sub.Unmarshal(want))
	require.NoError(t, sub.Unmarshal(got))
	assert.Equal(t, want, got, "testdata/config.yaml")
	require.NoError(t, confmap.Validate(got))

	bad := confmap.NewFromStringMap(map[string]any{"ring_buffer_size": 3})
	want, got = linux.CreateDefaultConfig(), other.CreateDefaultConfig()
	require.NoError(t, bad.Unmarshal(want))
	require.NoError(t, bad.Unmarshal(got))
	wantErr := confmap.Validate(want)
	require.Error(t, wantErr)
	assert.EqualError(t, confmap.Validate(got), wantErr.Error())
}

// Start is where the collector learns that podnet cannot run here, with the reason.
func TestUnsupportedReceiverFailsStart(t *testing.T) {
	for _, platform := range []struct{ goos, goarch, says string }{
		{"windows", "amd64", "podnet needs Linux (eBPF): this collector runs on windows"},
		{"linux", "ppc64le", "podnet needs Linux on amd64 or arm64, the CPUs its eBPF programs are built and tested for: this collector runs on linux/ppc64le"},
	} {
		f := unsupportedFactory(platform.goos, platform.goarch)
		set := receivertest.NewNopSettings(f.Type())
		logs, err := f.CreateLogs(context.Background(), set, f.CreateDefaultConfig(), consumertest.NewNop())
		require.NoError(t, err)
		metrics, err := f.CreateMetrics(context.Background(), set, f.CreateDefaultConfig(), consumertest.NewNop())
		require.NoError(t, err)
		for _, r := range []component.Component{logs, metrics} {
			require.NoError(t, r.Shutdown(context.Background()), "Shutdown before Start")
			assert.EqualError(t, r.Start(context.Background(), componenttest.NewNopHost()), platform.says)
			require.NoError(t, r.Shutdown(context.Background()))
		}
	}
}
