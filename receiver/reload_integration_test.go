package podnetreceiver

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// A collector config reload shuts the old pipelines down and builds new ones from the same
// factories: the new podnet instance must attach afresh with the new settings, deliver, and
// the old instance's programs must be gone. The test lives here rather than at the module
// root for the netns helpers and record accessors; the root's NewFactory is this one.
func TestCollectorConfigReload(t *testing.T) {
	netnstest.RequireRoot(t)
	sink := new(consumertest.LogsSink)
	provider := &switchingProvider{conf: reloadConfig(true)}
	core, logs := observer.New(zapcore.InfoLevel)
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.NewDefaultBuildInfo(),
		Factories: func() (otelcol.Factories, error) {
			return otelcol.Factories{
				Receivers: map[component.Type]receiver.Factory{metadata.Type: NewFactory()},
				Exporters: map[component.Type]exporter.Factory{sinkType: sinkFactory(sink)},
				Telemetry: observedTelemetry(core),
			}, nil
		},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{switchingScheme + ":podnet"},
			ProviderFactories: []confmap.ProviderFactory{confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider { return provider })},
		}},
		DisableGracefulShutdown: true, // no signal handlers in a test binary
		SkipSettingGRPCLogger:   true,
	})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- col.Run(context.Background()) }()
	stop := sync.OnceValue(func() error { col.Shutdown(); return <-runErr })
	defer func() {
		assert.NoError(t, stop())
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("collector: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	}()

	attached := func(n int) [][]ebpf.ProgramID {
		t.Helper()
		require.Eventually(t, func() bool {
			return logs.FilterMessage("podnet attached to the kernel").Len() >= n && col.GetState() == otelcol.StateRunning
		}, 20*time.Second, 10*time.Millisecond, "podnet instance %d attached and the collector running", n)
		var ids [][]ebpf.ProgramID
		for _, e := range logs.FilterMessage("podnet attached to the kernel").All() {
			p, ok := e.ContextMap()["program_ids"].([]ebpf.ProgramID)
			require.True(t, ok, "program_ids field: %T", e.ContextMap()["program_ids"])
			require.NotEmpty(t, p)
			ids = append(ids, p)
		}
		return ids
	}

	// Config A: every event kind.
	old := attached(1)[0]
	port := oneConnection(t)
	require.Eventually(t, func() bool { return hasServerClose(sink, port) }, 10*time.Second, 10*time.Millisecond, "events before the reload")
	assert.NotEmpty(t, byPort(sink, port, "podnet.tcp.accept"), "config A delivers accepts")

	// Config B: accepts disabled. The provider tells the collector, which reloads fully.
	provider.change(reloadConfig(false))
	ids := attached(2)
	require.Len(t, ids, 2, "exactly one new attachment")
	require.Equal(t, 1, logs.FilterMessage("Config updated, restart service").Len(), "a full reload")
	assert.Empty(t, leftLoaded(t, old), "the retired instance's programs are unloaded")
	assert.Equal(t, ids[1], stillLoaded(t, ids[1]), "the new instance's programs are loaded")

	port = oneConnection(t)
	require.Eventually(t, func() bool { return hasServerClose(sink, port) }, 10*time.Second, 10*time.Millisecond, "events after the reload")
	assert.Len(t, byPort(sink, port, "podnet.tcp.connect"), 1, "config B delivers connects")
	// The accept would have preceded the server's close in the ring buffer.
	assert.Empty(t, byPort(sink, port, "podnet.tcp.accept"), "config B disables accepts")
	assert.Zero(t, logs.FilterLevelExact(zapcore.ErrorLevel).Len(), "collector errors")

	require.NoError(t, stop())
	assert.Empty(t, leftLoaded(t, ids[1]), "programs unloaded at collector shutdown")
}

// observedTelemetry logs to core and makes no internal metrics or traces (the default
// telemetry would serve metrics on :8888 and pulls in cloud resource detectors).
func observedTelemetry(core zapcore.Core) telemetry.Factory {
	return telemetry.NewFactory(func() component.Config { return &struct{}{} },
		telemetry.WithCreateLogger(func(context.Context, telemetry.LoggerSettings, component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			return zap.New(core), nil, nil
		}))
}

// reloadConfig is a minimal collector: podnet → the sink.
func reloadConfig(accepts bool) map[string]any {
	return map[string]any{
		"receivers": map[string]any{"podnet": map[string]any{
			"poll_interval": "20ms",
			"events":        map[string]any{"podnet.tcp.accept": map[string]any{"enabled": accepts}},
		}},
		"exporters": map[string]any{sinkType.String(): nil},
		"service": map[string]any{
			"pipelines": map[string]any{"logs": map[string]any{
				"receivers": []any{"podnet"},
				"exporters": []any{sinkType.String()},
			}},
		},
	}
}

const switchingScheme = "podnettest"

// switchingProvider serves one config until change swaps it and tells the collector, the way
// a file provider reports an edited file.
type switchingProvider struct {
	mu      sync.Mutex
	conf    map[string]any
	watcher confmap.WatcherFunc
}

func (p *switchingProvider) Retrieve(_ context.Context, _ string, watcher confmap.WatcherFunc) (*confmap.Retrieved, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watcher = watcher
	return confmap.NewRetrieved(p.conf)
}

func (p *switchingProvider) change(conf map[string]any) {
	p.mu.Lock()
	p.conf = conf
	watcher := p.watcher
	p.mu.Unlock()
	watcher(&confmap.ChangeEvent{})
}

func (*switchingProvider) Scheme() string                 { return switchingScheme }
func (*switchingProvider) Shutdown(context.Context) error { return nil }

var sinkType = component.MustNewType("podnetsink")

// sinkFactory makes exporters that all feed one sink, so records survive the reload.
func sinkFactory(sink *consumertest.LogsSink) exporter.Factory {
	type sinkExporter struct {
		component.StartFunc
		component.ShutdownFunc
		*consumertest.LogsSink
	}
	return exporter.NewFactory(sinkType, func() component.Config { return &struct{}{} },
		exporter.WithLogs(func(context.Context, exporter.Settings, component.Config) (exporter.Logs, error) {
			return sinkExporter{LogsSink: sink}, nil
		}, component.StabilityLevelDevelopment))
}

// oneConnection makes one loopback connection, closed by both ends, and returns the
// server's port, which tells its records from other tests' traffic.
func oneConnection(t *testing.T) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	return int64(ln.Addr().(*net.TCPAddr).Port)
}

// byPort returns the records of one event kind on the connection to the server port.
func byPort(sink *consumertest.LogsSink, port int64, name string) []map[string]any {
	var out []map[string]any
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					a := lrs.At(k).Attributes().AsRaw()
					if lrs.At(k).EventName() == name && (a["network.local.port"] == port || a["network.peer.port"] == port) {
						out = append(out, a)
					}
				}
			}
		}
	}
	return out
}

func hasServerClose(sink *consumertest.LogsSink, port int64) bool {
	for _, a := range byPort(sink, port, "podnet.tcp.close") {
		if a["podnet.connection.role"] == "server" {
			return true
		}
	}
	return false
}
