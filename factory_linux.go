//go:build linux && (amd64 || arm64)

package podnet

import (
	"go.opentelemetry.io/collector/receiver"

	podnetreceiver "github.com/podnet/podnet/receiver"
)

// NewFactory returns the factory of the podnet receiver, for an ocb builder config:
//
//	receivers:
//	  - gomod: github.com/podnet/podnet vX.Y.Z
func NewFactory() receiver.Factory { return podnetreceiver.NewFactory() }
