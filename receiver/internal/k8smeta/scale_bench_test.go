//go:build k8sscale

package k8smeta

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

// scaleRow is one agent run of TestClusterScale.
type scaleRow struct {
	pods, nodes, services int
	agent                 string        // "store", or "watchlist" (watchListStore)
	created               time.Duration // bulk creation of pods and Services
	sync, after           agentSample   // after sync; after the churn (GC'd)
	churned               int
	churnBody, churnWire  int64 // per replaced pod
	churnCPU, churnWall   time.Duration
	load                  string // /proc/loadavg before the agent started and after it stopped
}

// TestClusterScale is make bench-k8s-scale: for each size N of PODNET_K8S_SCALE_SIZES, a
// fresh etcd + kube-apiserver with N pods on N/10 nodes and N/10 Services, the Store as
// node-0001's agent in its own process (TestScaleAgent): time to sync, RSS and heap, then
// bytes and CPU while 10% of the pods are replaced. PODNET_K8S_SCALE_WATCHLIST=1 runs a second
// agent per size, watchListStore, to size what listing whole objects in one piece costs.
func TestClusterScale(t *testing.T) {
	var sizes []int
	for _, f := range strings.Split(cmp(os.Getenv("PODNET_K8S_SCALE_SIZES"), "2500,5000,10000"), ",") {
		n, err := strconv.Atoi(f)
		require.NoError(t, err, "PODNET_K8S_SCALE_SIZES")
		sizes = append(sizes, n)
	}
	agents := []string{"store"}
	if os.Getenv("PODNET_K8S_SCALE_WATCHLIST") == "1" {
		agents = append(agents, "watchlist")
	}
	var rows []scaleRow
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			c := kubetest.Start(t)
			kubeconfig := loadRBAC(t).Apply(t, c)
			namespaces := make([]string, 20)
			for i := range namespaces {
				namespaces[i] = fmt.Sprintf("team-%02d", i)
				c.Namespace(t, namespaces[i])
			}
			start := time.Now()
			c.CreateServices(t, kubetest.BulkServices{Namespaces: namespaces, Services: n / 10})
			pods := c.CreatePods(t, kubetest.BulkPods{Namespaces: namespaces, Pods: n, Nodes: n / 10, Services: n / 10})
			created := time.Since(start)
			t.Logf("%d pods, %d Services created in %v", n, n/10, created.Round(time.Second))
			for k, agent := range agents {
				row := scaleRow{pods: n, nodes: n / 10, services: n / 10, agent: agent, created: created}
				pods = runAgent(t, c, kubeconfig, pods, k, &row)
				t.Log(row.line())
				rows = append(rows, row)
			}
		})
	}
	report := scaleReport(rows)
	fmt.Print(report)
	if path := os.Getenv("PODNET_K8S_SCALE_RESULTS"); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(report), 0o644))
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runAgent starts the agent, waits for its sync, replaces 10% of the pods and waits until the
// agent has seen a pod created after all of them (one watch stream delivers in order).
func runAgent(t *testing.T, c *kubetest.Cluster, kubeconfig string, pods []*corev1.Pod, run int, row *scaleRow) []*corev1.Pod {
	row.load = loadavg()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleAgent$", "-test.count=1")
	cmd.Env = append(os.Environ(), agentKubeconfigEnv+"="+kubeconfig)
	if row.agent == "watchlist" {
		cmd.Env = append(cmd.Env, agentWatchListEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	replies := bufio.NewScanner(stdout)
	ask := func(command string) agentSample {
		if command != "" {
			_, err := io.WriteString(stdin, command+"\n")
			require.NoError(t, err)
		}
		for replies.Scan() {
			if line, ok := strings.CutPrefix(replies.Text(), agentReplyPrefix); ok {
				var s agentSample
				require.NoError(t, json.Unmarshal([]byte(line), &s))
				return s
			}
		}
		t.Fatalf("agent ended: %v", replies.Err())
		return agentSample{}
	}
	row.sync = ask("")
	require.True(t, row.sync.Synced, "agent synced")

	cpu0, err := procCPU(cmd.Process.Pid)
	require.NoError(t, err)
	start := time.Now()
	pods, row.churned = c.ReplacePods(t, pods, 0.1, 0)
	sentinel := fmt.Sprintf("10.255.0.%d", run+1)
	c.CreatePod(t, kubetest.Pod{Namespace: pods[0].Namespace, Name: fmt.Sprintf("sentinel-%d", run), Node: "node-sentinel", IPs: []string{sentinel}})
	churned := ask("wait " + sentinel)
	row.churnWall = time.Since(start)
	cpu1, err := procCPU(cmd.Process.Pid)
	require.NoError(t, err)
	row.churnCPU = cpu1 - cpu0
	row.churnBody = (churned.BodyBytes - row.sync.BodyBytes) / int64(row.churned)
	row.churnWire = (churned.Wire - row.sync.Wire) / int64(row.churned)
	row.after = ask("sample")
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	row.load += " → " + loadavg()
	return pods
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

const mib = 1 << 20

func (r scaleRow) line() string {
	return fmt.Sprintf("| %d | %d | %d | %s | %.0f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %.1f | %.1f | %d | %.1f | %.0f | %s |",
		r.pods, r.nodes, r.services, r.agent, r.created.Seconds(), float64(r.sync.SyncMillis)/1000,
		float64(r.sync.BaseRSS)/mib, float64(r.sync.RSS)/mib, float64(r.sync.HWM)/mib, float64(r.sync.HeapAlloc)/mib,
		float64(r.sync.BodyBytes)/mib, float64(r.sync.Wire)/mib,
		r.churned, float64(r.churnBody)/1024, float64(r.churnWire)/1024,
		r.churnCPU.Milliseconds(), float64(r.churnCPU.Microseconds())/float64(r.churned)/1000,
		100*r.churnCPU.Seconds()/r.churnWall.Seconds(), r.load)
}

func scaleReport(rows []scaleRow) string {
	var b strings.Builder
	b.WriteString("| pods | nodes | Services | agent | create s | sync s | base RSS MiB | RSS MiB | HWM MiB | heap MiB | sync body MiB | sync wire MiB | replaced | body KiB/replaced | wire KiB/replaced | churn CPU ms | CPU ms/replaced | % core during churn | load 1/5/15 before → after |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r.line() + "\n")
	}
	b.WriteString("\nAfter the churn (GC'd); watch-list requests (sendInitialEvents) by then:\n\n| pods | agent | RSS MiB | HWM MiB | heap MiB | watch-lists |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %.1f | %.1f | %.1f | %d |\n", r.pods, r.agent, float64(r.after.RSS)/mib, float64(r.after.HWM)/mib, float64(r.after.HeapAlloc)/mib, r.after.WatchLists)
	}
	return b.String()
}
