//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
)

// A kernel that refuses the DNS program (here: the opener fails) costs one log line at Start,
// never a failed Start; mode off does not even try, and says nothing.
func TestDNSNamesDegradeWithOneLogLine(t *testing.T) {
	for _, mode := range []string{dnsNamesAuto, dnsNamesOff} {
		t.Run(mode, func(t *testing.T) {
			cfg := NewDefaultConfig()
			cfg.DNSNames.Mode = mode
			f := newFakeReceiver(t, cfg, newFakeRing(), new(consumertest.LogsSink), nil)
			core, logs := observer.New(zap.InfoLevel)
			f.set.Logger = zap.New(core)
			tried := 0
			f.openNames = func(dnsnames.Options) (dnsSource, error) {
				tried++
				return nil, errors.New("operation not permitted")
			}
			f.start(t)
			require.NoError(t, f.Shutdown(context.Background()))
			off := logs.FilterMessageSnippet("dns_names is off").All()
			if mode == dnsNamesOff {
				assert.Zero(t, tried)
				assert.Empty(t, off)
				return
			}
			assert.Equal(t, 1, tried)
			require.Len(t, off, 1)
			assert.Contains(t, off[0].ContextMap()["error"], "operation not permitted")
		})
	}
}

// The DNS program runs for every packet on the node: it is loaded only when something this
// podnet emits can carry server.address (connect or close records, or the metric attribute).
func TestDNSNamesLoadedOnlyWhenSomethingCarriesThem(t *testing.T) {
	for _, c := range []struct {
		name    string
		logs    bool
		metrics bool
		mutate  func(*Config)
		load    bool
	}{
		{"metrics only", false, true, func(*Config) {}, false},
		{"metrics with the attribute", false, true, func(c *Config) { c.DNSNames.MetricAttribute = true }, true},
		{"logs", true, false, func(*Config) {}, true},
		{"logs of accepts only", true, true, func(c *Config) {
			c.Events.PodnetTCPConnect.Enabled, c.Events.PodnetTCPClose.Enabled = false, false
		}, false},
		{"logs of closes only", true, false, func(c *Config) { c.Events.PodnetTCPConnect.Enabled = false }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			c.mutate(cfg)
			var (
				logs    consumer.Logs
				metrics consumer.Metrics
				ring    *fakeRing
			)
			if c.logs {
				logs, ring = new(consumertest.LogsSink), newFakeRing()
			}
			if c.metrics {
				metrics = new(consumertest.MetricsSink)
			}
			f := newFakeReceiver(t, cfg, ring, logs, metrics)
			tried := 0
			f.openNames = func(dnsnames.Options) (dnsSource, error) {
				tried++
				return nil, errors.New("not on this fake")
			}
			f.start(t)
			require.NoError(t, f.Shutdown(context.Background()))
			assert.Equal(t, c.load, tried == 1, "DNS program loaded")
		})
	}
}

// A podnet in which nothing carries server.address loads no DNS program, and says so once: as
// information at the defaults, as a warning naming the bound it then ignores (found by an
// independent check: max_names set in a metrics-only podnet, no word).
func TestDNSNamesNotLoadedSaysWhatItIgnores(t *testing.T) {
	for _, maxNames := range []int{defaultDNSMaxNames, 100} {
		cfg := NewDefaultConfig()
		cfg.DNSNames.MaxNames = maxNames
		f := newFakeReceiver(t, cfg, nil, nil, new(consumertest.MetricsSink))
		core, logs := observer.New(zap.InfoLevel)
		f.set.Logger = zap.New(core)
		f.start(t)
		require.NoError(t, f.Shutdown(context.Background()))
		said := logs.FilterMessageSnippet("dns_names not loaded").All()
		require.Len(t, said, 1, "max_names %d", maxNames)
		if maxNames == defaultDNSMaxNames {
			assert.Equal(t, zap.InfoLevel, said[0].Level)
			continue
		}
		assert.Equal(t, zap.WarnLevel, said[0].Level)
		assert.Equal(t, []any{"dns_names.max_names"}, said[0].ContextMap()["ignored"])
	}
}

// A DNS program detached by something else is said once, at the first report that sees it.
func TestADetachedDNSProgramIsSaidOnce(t *testing.T) {
	tb, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	core, logs := observer.New(zap.WarnLevel)
	rep := &dnsReporter{tb: tb, logger: zap.New(core)}
	rep.report(dnsnames.Counters{})
	assert.Zero(t, logs.Len(), "attached: nothing to say")
	for range 3 {
		rep.report(dnsnames.Counters{Detached: true})
	}
	require.Equal(t, 1, logs.Len(), "said once")
	assert.Contains(t, logs.All()[0].Message, "detached")
}
