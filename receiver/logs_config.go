package podnetreceiver

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
)

// LogsConfig shapes what the logs pipeline gets, decided in the kernel so that what nobody
// keeps costs nothing.
type LogsConfig struct {
	// ProcessAttributes puts process.pid and process.executable.name on records. They come from
	// syscall hooks (connect, accept) that put every syscall on the node on the kernel's slow
	// tracing path; off attaches none: passive opens are then reported when their handshake
	// ends, and a connect() that fails before a SYN is built (no route) is not seen.
	ProcessAttributes bool `mapstructure:"process_attributes"`
	// Sampling keeps a share of the normal connections' records.
	Sampling LogsSamplingConfig `mapstructure:"sampling"`
}

// LogsSamplingConfig keeps every abnormal connection (failed connect, reset, aborted,
// retransmitted) and 1 in OneIn of the others, all records of a kept one, decided from the
// connection's addresses and ports so both ends (on any node) keep the same connections.
// Records then carry podnet.sampling.one_in. Metrics stay exact (they are counted in the
// kernel, apart from the logs).
type LogsSamplingConfig struct {
	// OneIn: 1 (the default) keeps every connection.
	OneIn int `mapstructure:"one_in"`
}

// maxSampleOneIn bounds logs.sampling.one_in (a rate of one in a million is already "none").
const maxSampleOneIn = 1 << 20

func (c LogsConfig) validate(metricsAggregation string) error {
	var errs []error
	if c.Sampling.OneIn < 1 || c.Sampling.OneIn > maxSampleOneIn {
		errs = append(errs, fmt.Errorf("logs.sampling.one_in: %d must be between 1 (keep every connection) and %d", c.Sampling.OneIn, maxSampleOneIn))
	}
	if c.Sampling.OneIn > 1 && metricsAggregation == aggregationEvents {
		errs = append(errs, errors.New("logs.sampling.one_in: sampling drops events before they leave the kernel, so metrics_aggregation: events would count only the kept ones; use auto"))
	}
	return errors.Join(errs...)
}

// unused says once at Start which settings shape only log records when no logs pipeline uses
// the receiver, with ring's (the ring's settings that are set) where no ring is made either: a
// metrics-only podnet ignores them, which it should say rather than leave a user thinking they
// apply (found by independent checks).
//
// logs.process_attributes is not among them where metrics are counted from events
// (metricsFromEvents): off, it takes away the connect() hooks those metrics count a connect that
// fails before a SYN with (README, metrics_aggregation), so it is not ignored (found by an
// independent check: said ignored, and those failures were missing from the metrics).
func (c LogsConfig) unused(hasLogs, metricsFromEvents bool, events metadata.EventsConfig, ring []string, logger *zap.Logger) {
	if hasLogs {
		return
	}
	var set []string
	if !metricsFromEvents {
		// No ring at all (found by an independent check: a ring_buffer_size set for nothing).
		set = append(set, ring...)
	}
	if c.Sampling.OneIn > 1 {
		set = append(set, "logs.sampling.one_in")
	}
	if !c.ProcessAttributes && !metricsFromEvents {
		set = append(set, "logs.process_attributes")
	}
	for name, on := range map[string]bool{
		"podnet.tcp.connect": events.PodnetTCPConnect.Enabled, "podnet.tcp.accept": events.PodnetTCPAccept.Enabled,
		"podnet.tcp.close": events.PodnetTCPClose.Enabled, "podnet.tcp.connection.found": events.PodnetTCPConnectionFound.Enabled,
	} {
		if !on {
			set = append(set, "events."+name+".enabled")
		}
	}
	if len(set) == 0 {
		return
	}
	slices.Sort(set)
	logger.Warn("podnet: settings that shape log records are set, but no logs pipeline uses this receiver: they are ignored (metrics are counted in full either way); add podnet to a logs pipeline, or remove them",
		zap.Strings("ignored", set))
}

// ringSettings names the ring's settings set to other than their defaults.
func (cfg *Config) ringSettings() []string {
	var set []string
	if cfg.RingBufferSize != defaultRingBufferSize {
		set = append(set, "ring_buffer_size")
	}
	if cfg.RingBuffers != ringBuffersShared {
		set = append(set, "ring_buffers")
	}
	return set
}
