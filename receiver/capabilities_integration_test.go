package podnetreceiver

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/netnstest"
)

// capabilityChildEnv makes the test binary run capabilityChild instead of the tests: the
// receiver end to end under whatever capabilities capsh left it.
const capabilityChildEnv = "PODNET_RECEIVER_CAPABILITY_CHILD_PORT"

// manifestCapabilities is what examples/kubernetes/daemonset.yaml and the Helm values add
// after dropping ALL (SYS_RESOURCE only matters before 5.11).
var manifestCapabilities = []string{"cap_bpf", "cap_perfmon", "cap_sys_ptrace", "cap_dac_read_search"}

// capabilityChild starts the receiver, dials the port it was given on loopback, and prints the
// pod UID of the accept it saw there.
func capabilityChild(port string) {
	sink := new(consumertest.LogsSink)
	cfg := NewDefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	set := receivertest.NewNopSettings(metadata.Type)
	core, logged := observer.New(zap.InfoLevel)
	set.Logger = zap.New(core)
	r, err := NewFactory().CreateLogs(context.Background(), set, cfg, sink)
	if err == nil {
		err = r.Start(context.Background(), componenttest.NewNopHost())
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	// dns_names (auto) needs NET_ADMIN, which the manifests do not grant: one line says so.
	for _, e := range logged.FilterMessageSnippet("dns_names is off").All() {
		fmt.Printf("dns_names_off=%v\n", e.ContextMap()["error"])
	}
	defer func() { _ = r.Shutdown(context.Background()) }()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	_, _ = c.Write([]byte("x\n"))
	_, _ = c.Read(make([]byte, 8))
	_ = c.Close()
	want, _ := strconv.Atoi(port)
	// Polls for the record (a child process has no *testing.T for require.Eventually).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, ld := range sink.AllLogs() {
			for i := 0; i < ld.ResourceLogs().Len(); i++ {
				rl := ld.ResourceLogs().At(i)
				lrs := rl.ScopeLogs().At(0).LogRecords()
				for j := 0; j < lrs.Len(); j++ {
					p, _ := lrs.At(j).Attributes().Get("network.local.port")
					if lrs.At(j).EventName() == "podnet.tcp.accept" && p.Int() == int64(want) {
						uid, _ := rl.Resource().Attributes().Get("k8s.pod.uid")
						fmt.Println("pod_uid=" + uid.AsString())
						return
					}
				}
			}
		}
	}
	fmt.Println("error: no accept event seen")
	os.Exit(1)
}

// The receiver works end to end — BPF, /proc and cgroup attribution — with exactly the
// capabilities the manifests grant, as root with every other capability dropped.
func TestReceiverWorksWithTheManifestCapabilities(t *testing.T) {
	netnstest.RequireRoot(t)
	cgroups := netnstest.NewKubeletCgroups(t)
	uid := netnstest.NewUID()
	pod := netnstest.HostPod(t, cgroups.Container(uid, netnstest.NewContainerID()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, ln.Close())
	srv := pod.StartServer(t, "127.0.0.1:"+port, 1)

	out, err := netnstest.RunWithOnly(t, manifestCapabilities, capabilityChildEnv+"="+port)
	require.NoError(t, err, out)
	assert.Contains(t, out, "pod_uid="+uid, "the pod is attributed under the manifests' capabilities")
	assert.Equal(t, 1, strings.Count(out, "dns_names_off="), "dns_names degrades with one log line without NET_ADMIN:\n%s", out)
	assert.Contains(t, out, "needs CAP_NET_ADMIN", "and says what it needs")
	srv.Wait(t)
}

// Without one of the manifests' BPF capabilities Start names it, and not cilium/ebpf's
// "MEMLOCK may be too low", wrong on kernels that charge BPF memory to the cgroup (5.11+).
func TestStartNamesAMissingBPFCapability(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, missing := range []string{"cap_bpf", "cap_perfmon"} {
		keep := slices.DeleteFunc(slices.Clone(manifestCapabilities), func(c string) bool { return c == missing })
		out, err := netnstest.RunWithOnly(t, keep, capabilityChildEnv+"=0")
		require.Error(t, err, out)
		assert.Contains(t, out, "the collector lacks "+strings.ToUpper(missing)+";", out)
		assert.NotContains(t, out, "MEMLOCK", "no memlock hint without %s", missing)
	}
}

// Without CAP_SYS_PTRACE (the /proc scan, the first thing Start does) and the BPF
// capabilities, one error names all three: found by an independent check, a user fixed one
// capability per attempt.
func TestStartNamesEveryMissingCapability(t *testing.T) {
	netnstest.RequireRoot(t)
	out, err := netnstest.RunWithOnly(t, []string{"cap_dac_read_search"}, capabilityChildEnv+"=0")
	require.Error(t, err, out)
	for _, c := range []string{"CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON"} {
		assert.Contains(t, out, c, out)
	}
}
