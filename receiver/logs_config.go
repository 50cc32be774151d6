package podnetreceiver

import (
	"errors"
	"fmt"
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
