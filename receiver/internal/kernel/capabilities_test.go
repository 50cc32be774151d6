package kernel

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// capChild is set when this test binary runs as the child of TestLeastPrivilege: it loads and
// attaches podnet with whatever capabilities capsh left it, reports, and exits.
const capChild = "PODNET_CAPABILITY_CHILD"

// capChildNodeNetns, if set, is the namespace the child reads Service backends in.
const capChildNodeNetns = "PODNET_CAPABILITY_CHILD_NODE_NETNS"

func TestMain(m *testing.M) {
	if hooks := os.Getenv(memoryLimitChild); hooks != "" {
		memoryLimitChildRun(hooks)
		os.Exit(0)
	}
	if os.Getenv(probeFailedChild) != "" {
		probeFailedChildRun()
		os.Exit(0)
	}
	if os.Getenv(capChild) != "" {
		// Service backends asked for, in this process's own namespace: they need CAP_NET_ADMIN,
		// and without it everything else still loads.
		natNetns := "/proc/thread-self/ns/net"
		if ns := os.Getenv(capChildNodeNetns); ns != "" {
			natNetns = ns // the node's, another than this process's
		}
		t, err := Open(Options{
			Hooks: HooksAuto, RingBufferSize: 1 << 20, MaxTrackedConnections: 1024, MaxAggregates: 16,
			NATNetns: natNetns,
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("attached:", t.Mode())
		// The open connections' reads (issue 12) with the same capabilities: the start-up
		// scan and the live progress walk.
		_, scanErr := t.FindExisting(func(*bpf.PodnetEvent) {})
		progressErr := t.DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue) {})
		fmt.Printf("iterators: %v, scan: %v, progress: %v\n", t.IteratorsUnavailable(), scanErr, progressErr)
		fmt.Printf("backends: %v\n", t.BackendsErr())
		_ = t.Close()
		os.Exit(0)
	}
	netnstest.MaybeRunHelper()
	goleak.VerifyTestMain(m) // every goroutine a test starts has ended when the tests end
}

func runWith(t *testing.T, keep ...string) (string, error) {
	return netnstest.RunWithOnly(t, keep, capChild+"=1")
}

// The capability set the manifests grant is enough, and each of its BPF capabilities is needed.
func TestLeastPrivilege(t *testing.T) {
	netnstest.RequireRoot(t)
	out, err := runWith(t, "cap_bpf", "cap_perfmon")
	assert.NoError(t, err, out)
	assert.Contains(t, out, "attached:")
	assert.Contains(t, out, "iterators: <nil>, scan: <nil>, progress: <nil>", "the scan and the live reads need no more")
	assert.Contains(t, out, "backends: podnet lacks CAP_NET_ADMIN", "Service backends say what they need, the rest runs")

	out, err = runWith(t, "cap_bpf", "cap_perfmon", "cap_net_admin")
	assert.NoError(t, err, out)
	assert.Contains(t, out, "backends: <nil>", "CAP_NET_ADMIN is all Service backends add in podnet's own namespace")

	// In another namespace (service_backends.node_netns) they need CAP_SYS_ADMIN to enter it:
	// said before loading, with the way out, and the rest runs.
	node := netnstest.NewNode(t, 125).NetnsPath()
	out, err = netnstest.RunWithOnly(t, []string{"cap_bpf", "cap_perfmon", "cap_net_admin"}, capChild+"=1", capChildNodeNetns+"="+node)
	assert.NoError(t, err, out)
	assert.Contains(t, out, "backends: podnet lacks CAP_SYS_ADMIN, which entering the node's network namespace ("+node, out)
	assert.Contains(t, out, "run podnet with hostNetwork and leave node_netns unset", out)
	out, err = netnstest.RunWithOnly(t, []string{"cap_bpf", "cap_perfmon", "cap_net_admin", "cap_sys_admin"}, capChild+"=1", capChildNodeNetns+"="+node)
	assert.NoError(t, err, out)
	assert.Contains(t, out, "backends: <nil>", "with CAP_SYS_ADMIN the node's namespace is entered")

	// Neither says what cilium/ebpf appends to any EPERM, "MEMLOCK may be too low": wrong on
	// kernels that account BPF memory to the cgroup (5.11+), beside podnet's own explanation.
	out, err = runWith(t, "cap_perfmon")
	assert.Error(t, err)
	assert.Contains(t, out, "the collector lacks CAP_BPF;", "without CAP_BPF the error names it")
	assert.NotContains(t, out, "MEMLOCK", "no memlock hint without CAP_BPF")

	out, err = runWith(t, "cap_bpf")
	assert.Error(t, err)
	assert.Contains(t, out, "the collector lacks CAP_PERFMON;", "without CAP_PERFMON the error names it")
	assert.NotContains(t, out, "MEMLOCK", "no memlock hint without CAP_PERFMON")

	// Granted by the container but run as a non-root user: the capabilities are only in the
	// bounding set, and adding them again would change nothing (found by an independent check).
	out, err = netnstest.RunAsNobody(t, capChild+"=1")
	assert.Error(t, err)
	assert.Contains(t, out, "podnet runs as uid 65534 and a container's capabilities take effect only for uid 0", out)
	assert.NotContains(t, out, "add them to the container's securityContext")
}
