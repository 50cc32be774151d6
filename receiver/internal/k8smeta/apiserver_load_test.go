package k8smeta

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podnet/podnet/internal/kubetest"
)

// The defaults are CI's scaled-down run; make bench-apiserver-load (bench/cmd/podnet-apiserver-load)
// sets them for the large one and a results file.
var (
	loadPods     = flag.Int("load.pods", 400, "pods in the cluster")
	loadNodes    = flag.Int("load.nodes", 100, "nodes the pods are spread over")
	loadServices = flag.Int("load.services", 40, "Services; every other pod is behind one")
	loadWatchers = flag.Int("load.watchers", 3, "podnet Stores, each as a different node")
	loadChurn    = flag.Int("load.churn", 20, "pods replaced one by one while watched")
	loadModes    = flag.String("load.modes", "all,endpoints,none", "what to measure, comma-separated: peer_pods modes, kube-proxy (its watches), no-watchers (the churn's own cost)")
	loadResults  = flag.String("load.results", "", "markdown file to write the results to")
)

// loadRun is what one set of watchers cost the API server.
type loadRun struct {
	mode                     string
	synced                   time.Duration
	initialBytes, churnBytes int64         // summed over watchers, on the wire
	initialCPU, churnCPU     time.Duration // the API server's utime+stime
	idleBytesPerSec          float64       // bookmarks and the like, summed over watchers
	requests                 map[kubetest.Request]int
}

// TestAPIServerLoad runs sets of watchers against a real API server holding a cluster and
// measures the bytes the API server sends them and its CPU time, for the initial list and per
// pod replaced.
func TestAPIServerLoad(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	admin := bulkAdmin(t, c)
	lc := newLoadCluster(admin, *loadPods, *loadNodes, *loadServices)
	start := time.Now()
	require.NoError(t, lc.populate(context.Background()))
	t.Logf("cluster: %d pods on %d nodes, %d Services, written in %v", lc.pods, lc.nodes, lc.services, time.Since(start).Round(time.Second))

	var runs []loadRun
	next := 1 // churn replaces pods 1, 2, ...: odd ones behind no Service, even ones behind one
	for _, mode := range strings.Split(*loadModes, ",") {
		run := measureLoad(t, c, lc, kubeconfig, mode, *loadWatchers, next, *loadChurn)
		next += *loadChurn
		t.Logf("%s", run.row(*loadWatchers, *loadChurn))
		runs = append(runs, run)
	}
	if *loadResults != "" {
		require.NoError(t, os.WriteFile(*loadResults, []byte(loadReport(lc, runs)), 0o644))
	}
	// Without the cluster-wide pod watch a pod change costs a node at most its EndpointSlice
	// and Service events: measured 15-20x less than with it, asserted loosely.
	byMode := map[string]loadRun{}
	for _, r := range runs {
		byMode[r.mode] = r
	}
	if all, ok := byMode[string(PeerPodsAll)]; ok {
		for _, mode := range []PeerPods{PeerPodsEndpoints, PeerPodsNone} {
			if r, ok := byMode[string(mode)]; ok {
				assert.Less(t, r.churnBytes*3, all.churnBytes, "%s: bytes per pod change, against all's", mode)
				assert.Less(t, r.initialBytes, all.initialBytes, "%s: initial bytes, against all's", mode)
			}
		}
	}
}

// bulkAdmin is an admin clientset without client-go's 5 requests/s default limit.
func bulkAdmin(t *testing.T, c *kubetest.Cluster) kubernetes.Interface {
	cfg := c.AdminConfig()
	cfg.QPS = -1
	return clientsetFor(t, cfg)
}

// clientsetFor is a clientset whose idle connections are closed when the test ends (goleak).
func clientsetFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	httpClient, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)
	t.Cleanup(httpClient.CloseIdleConnections)
	client, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	require.NoError(t, err)
	return client
}

// apiserverCPU reads the API server's utime+stime from /proc/<pid>/stat.
func apiserverCPU(t *testing.T, c *kubetest.Cluster) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.APIServerPID()))
	require.NoError(t, err)
	// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func (r loadRun) row(watchers, churn int) string {
	return fmt.Sprintf("| %s | %v | %.0f | %.0f | %.1f | %.0f | %.2f | %.0f |", r.mode, r.synced.Round(time.Millisecond),
		float64(r.initialBytes)/1024, float64(r.initialBytes)/float64(watchers)/1024, r.initialCPU.Seconds(),
		float64(r.churnBytes)/float64(churn), float64(r.churnCPU.Microseconds())/float64(churn)/1000, r.idleBytesPerSec)
}
