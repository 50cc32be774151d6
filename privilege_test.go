package podnet

import (
	"flag"
	"fmt"
	"os"
)

// skipUnlessRoot is metadata.yaml's tests.goleak.setup and runs before the generated tests.
// Their *-lifecycle subtests Start the receiver, which loads the real eBPF programs (root, or
// CAP_BPF+CAP_PERFMON); every other test needs no privilege. Not as root, those subtests are
// left out with a message and the rest run; in CI (CI set) nothing is left out, so an
// unprivileged CI run fails instead of passing with nothing checked.
func skipUnlessRoot() {
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		fmt.Fprintln(os.Stderr, "podnet: TestComponentLifecycle loads eBPF programs: CI must run it as root")
		return
	}
	fmt.Fprintln(os.Stderr, "SKIP: TestComponentLifecycle/*-lifecycle load eBPF programs and need root; run `sudo go test ./...`")
	// The test flags are registered but not parsed yet: a -skip of the caller's still wins.
	_ = flag.Set("test.skip", "^TestComponentLifecycle$/-lifecycle$")
}
