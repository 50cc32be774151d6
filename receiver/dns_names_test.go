//go:build linux

package podnetreceiver

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/receiver/internal/dnsnames"
)

// A kernel that refuses the DNS program (here: the opener fails) costs one log line at Start,
// never a failed Start; mode off does not even try, and says nothing.
func TestDNSNamesDegradeWithOneLogLine(t *testing.T) {
	for _, mode := range []string{dnsNamesAuto, dnsNamesOff} {
		t.Run(mode, func(t *testing.T) {
			cfg := NewDefaultConfig()
			cfg.DNSNames.Mode = mode
			f := newFakeReceiver(t, cfg, nil, nil, nil)
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
