//go:build !linux || !(amd64 || arm64)

package podnet

import (
	"runtime"

	"go.opentelemetry.io/collector/receiver"
)

// NewFactory returns podnet's factory on an OS without eBPF, or a CPU its programs are not
// built for (bpf2go's targets: amd64, arm64), so that a distribution built for several
// platforms compiles: configurations validate as on Linux, and Start fails saying what podnet
// needs.
func NewFactory() receiver.Factory { return unsupportedFactory(runtime.GOOS, runtime.GOARCH) }
