//go:build !darwin && !windows

package podnet

import (
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/netnstest"
)

// privilegedHost is metadata.yaml's tests.host: the generated lifecycle subtests Start the
// receiver, which loads the real eBPF programs (root, or CAP_BPF+CAP_PERFMON). Not as root
// they skip, saying so; in CI (CI set) they fail. The build constraint is the generated
// tests' (metadata.yaml status.unsupported_platforms).
func privilegedHost(t *testing.T) component.Host {
	netnstest.RequireRoot(t)
	return componenttest.NewNopHost()
}
