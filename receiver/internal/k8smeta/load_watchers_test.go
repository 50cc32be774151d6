package k8smeta

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/kubetest"
)

// kubeProxy is the mode that emulates kube-proxy's watches instead of podnet's: Services and
// EndpointSlices with its label selector (its watch of its own Node is left out: no Nodes here).
const kubeProxy = "kube-proxy"

// noWatchers measures the churn alone: what the API server spends writing the changes.
const noWatchers = "no-watchers"

// measureLoad starts the watchers of mode as nodes node-0.., waits for them to sync, then
// replaces churn pods from index first on, and returns what the API server sent and spent.
func measureLoad(t *testing.T, c *kubetest.Cluster, lc *loadCluster, kubeconfig, mode string, watchers, first, churn int) loadRun {
	base, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	if mode == noWatchers {
		watchers = 0
	}
	run := loadRun{mode: mode, requests: map[kubetest.Request]int{}}
	traffic := make([]*kubetest.Traffic, watchers)
	stops := make([]func(), watchers)
	cpu0, start := apiserverCPU(t, c), time.Now()
	var wg sync.WaitGroup
	for w := range watchers {
		cfg, tr := kubetest.Count(base)
		traffic[w] = tr
		wg.Go(func() { stops[w] = startWatcher(t, cfg, mode, fmt.Sprintf("node-%d", w)) })
	}
	wg.Wait()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	run.synced = time.Since(start)
	wire := func() (sum int64) {
		for _, tr := range traffic {
			sum += tr.WireBytes()
		}
		return sum
	}
	quiet(wire)
	run.initialBytes, run.initialCPU = wire(), apiserverCPU(t, c)-cpu0

	idleFrom, idleBytes := time.Now(), wire()
	time.Sleep(2 * time.Second)
	run.idleBytesPerSec = float64(wire()-idleBytes) / time.Since(idleFrom).Seconds()

	bytes0, cpu0 := wire(), apiserverCPU(t, c)
	for i := first; i < first+churn; i++ {
		require.NoError(t, lc.replace(context.Background(), i%lc.pods))
	}
	quiet(wire)
	run.churnBytes, run.churnCPU = wire()-bytes0, apiserverCPU(t, c)-cpu0
	for _, tr := range traffic {
		for k, n := range tr.Requests() {
			run.requests[k] += n
		}
	}
	return run
}

// quiet waits until the watchers have received nothing for a second: the events have arrived.
func quiet(bytes func() int64) {
	last := bytes()
	for stable := 0; stable < 4; {
		time.Sleep(250 * time.Millisecond)
		if now := bytes(); now != last {
			last, stable = now, 0
		} else {
			stable++
		}
	}
}

// startWatcher starts one node's watches and waits until they have synced.
func startWatcher(t *testing.T, cfg *rest.Config, mode, node string) func() {
	if mode == kubeProxy {
		return startKubeProxyWatches(t, cfg)
	}
	s, err := NewStore(cfg, storeOptionsFor(mode, node))
	require.NoError(t, err)
	if !s.Start() {
		s.Stop()
		t.Errorf("%s: store of %s did not sync", mode, node)
	}
	return s.Stop
}

// storeOptionsFor is a load Store's options for a peer_pods mode.
func storeOptionsFor(mode, node string) Options {
	return Options{NodeName: node, PeerPods: PeerPods(mode), SyncTimeout: 5 * time.Minute}
}

// startKubeProxyWatches watches what kube-proxy watches, as kube-proxy does it (protobuf, its
// label selector, a shared informer factory).
func startKubeProxyWatches(t *testing.T, cfg *rest.Config) func() {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client := clientsetFor(t, cfg)
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
	}))
	f.Core().V1().Services().Informer()
	f.Discovery().V1().EndpointSlices().Informer()
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Errorf("kube-proxy watches: %v did not sync", typ)
		}
	}
	return func() { cancel(); f.Shutdown() }
}
