// Package examples tests the example configurations and, end to end, the otelcol-podnet
// binary that `make otelcol` builds.
package examples

import (
	"os"
	"testing"

	"github.com/podnet/podnet/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeRunHelper()
	os.Exit(m.Run())
}
