package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/netnstest"
)

// capChild is set when this test binary runs as the child of TestLeastPrivilege: it loads and
// attaches podnet with whatever capabilities capsh left it, reports, and exits.
const capChild = "PODNET_CAPABILITY_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(capChild) != "" {
		t, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: 1024, MaxAggregates: 16})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("attached:", t.Mode())
		_ = t.Close()
		os.Exit(0)
	}
	netnstest.MaybeRunHelper()
	os.Exit(m.Run())
}

// allCaps lists the capability names capsh knows on this machine.
func allCaps(t *testing.T) []string {
	out, err := exec.Command("capsh", "--print").Output()
	if err != nil {
		t.Fatalf("capsh (Debian libcap2-bin) is needed: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Bounding set ="); ok {
			return strings.Split(rest, ",")
		}
	}
	t.Fatal("capsh --print has no bounding set")
	return nil
}

// runWith runs the child as root but with only the given capabilities in its bounding set
// (which, for root, is what it gets after exec).
func runWith(t *testing.T, keep ...string) (string, error) {
	var drop []string
	for _, c := range allCaps(t) {
		if !contains(keep, c) {
			drop = append(drop, c)
		}
	}
	cmd := exec.Command("capsh", "--drop="+strings.Join(drop, ","), "--", "-c", `exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), capChild+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The capability set the manifests grant is enough, and each of its BPF capabilities is needed.
func TestLeastPrivilege(t *testing.T) {
	netnstest.RequireRoot(t)
	out, err := runWith(t, "cap_bpf", "cap_perfmon")
	assert.NoError(t, err, out)
	assert.Contains(t, out, "attached:")

	out, err = runWith(t, "cap_perfmon")
	assert.Error(t, err)
	assert.Contains(t, out, "the collector lacks CAP_BPF;", "without CAP_BPF the error names it")

	out, err = runWith(t, "cap_bpf")
	assert.Error(t, err)
	assert.Contains(t, out, "the collector lacks CAP_PERFMON;", "without CAP_PERFMON the error names it")
}
