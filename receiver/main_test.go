package podnetreceiver

import (
	"os"
	"testing"

	"github.com/podnet/podnet/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeRunHelper()
	if port := os.Getenv(capabilityChildEnv); port != "" {
		capabilityChild(port)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
