package receiver

import (
	"os"
	"testing"

	"github.com/podnet/podnet/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeRunHelper()
	os.Exit(m.Run())
}
