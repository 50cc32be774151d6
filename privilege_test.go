package podnet

import (
	"fmt"
	"os"
)

// skipUnlessRoot runs before the generated tests (metadata.yaml tests.goleak.setup): their
// lifecycle test loads the real eBPF programs, which needs root or CAP_BPF+CAP_PERFMON.
// Outside CI a non-root run skips the package loudly; in CI (CI set) it fails instead.
func skipUnlessRoot() {
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		fmt.Fprintln(os.Stderr, "FAIL: podnet's component tests load eBPF programs and must run as root in CI")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "SKIP: podnet's component tests load eBPF programs and need root; run `sudo go test ./...`")
	os.Exit(0)
}
