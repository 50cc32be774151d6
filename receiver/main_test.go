package podnetreceiver

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/podnet/podnet/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeRunHelper()
	if os.Getenv(holderEnv) != "" {
		if err := runHolder(os.Args[1:]); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if port := os.Getenv(capabilityChildEnv); port != "" {
		capabilityChild(port)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m) // every goroutine a test starts has ended when the tests end
}
