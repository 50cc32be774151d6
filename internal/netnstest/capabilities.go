package netnstest

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// RunWithOnly re-runs this test binary as root but with only the given capabilities (capsh
// names, e.g. "cap_bpf") left in its bounding set, which for root is what it has after exec.
// env selects what the child does (see the callers' TestMain). It returns the child's output.
func RunWithOnly(t testing.TB, keep []string, env ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("capsh", "--print").Output()
	if err != nil {
		t.Fatalf("capsh (Debian libcap2-bin) is needed: %v", err)
	}
	var drop []string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Bounding set ="); ok {
			for _, c := range strings.Split(rest, ",") {
				if !slices.Contains(keep, c) {
					drop = append(drop, c)
				}
			}
		}
	}
	cmd := exec.Command("capsh", "--drop="+strings.Join(drop, ","), "--", "-c", `exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}
