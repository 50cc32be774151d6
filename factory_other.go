//go:build !linux

package podnet

import (
	"runtime"

	"go.opentelemetry.io/collector/receiver"
)

// NewFactory returns podnet's factory on an OS without eBPF, so that a distribution built
// for several platforms compiles: configurations validate as on Linux, and Start fails
// saying that podnet needs Linux.
func NewFactory() receiver.Factory { return unsupportedFactory(runtime.GOOS) }
