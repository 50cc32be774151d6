// Package examples tests the example configurations and, end to end, the otelcol-podnet
// binary that `make otelcol` builds.
package examples

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/podnet/podnet/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeRunHelper()
	goleak.VerifyTestMain(m) // every goroutine a test starts has ended when the tests end
}
