package netnstest

import (
	"os"
	"os/exec"
	"path/filepath"
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

// RunAsNobody runs this test binary again as uid and gid 65534 with env added, its capability
// bounding set untouched: what a container that grants capabilities but runs as a non-root user
// gets (none of them effective). The binary is copied where that user can run it.
func RunAsNobody(t testing.TB, env ...string) (string, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "podnet-nobody-") //nolint:usetesting // t.TempDir's parent is closed to nobody
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, filepath.Base(os.Args[0]))
	if err := copyExecutable(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", bin)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func copyExecutable(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
