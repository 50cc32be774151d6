//go:build k8sscale

package k8smeta

import (
	"context"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// watchListStore is the Store's pod and Service informers (same protobuf, selectors,
// transforms and indexes; no EndpointSlices, no health reporting) on client-go's stock
// ListWatch, which streams the initial state as watch events (WatchListClient, on by default
// since client-go 1.35) and transforms each object as it arrives, where the Store opts out of
// it (see health.go) and decodes one list of whole objects first. It measures what that
// choice costs in memory.
type watchListStore struct {
	local, peers, services cache.SharedIndexInformer
	cancel                 context.CancelFunc
	wg                     sync.WaitGroup
}

func newWatchListStore(cfg *rest.Config, node string) (*watchListStore, error) {
	client, err := kubernetes.NewForConfig(protobufConfig(cfg))
	if err != nil {
		return nil, err
	}
	rc := client.CoreV1().RESTClient()
	onNode := fields.OneTermEqualSelector("spec.nodeName", node)
	peerPods, services := fields.ParseSelectorOrDie(peerPodSelector), fields.ParseSelectorOrDie(serviceSelector)
	s := &watchListStore{}
	for _, inf := range []struct {
		to        *cache.SharedIndexInformer
		lw        *cache.ListWatch
		example   runtime.Object
		transform cache.TransformFunc
		indexers  cache.Indexers
	}{
		{&s.local, cache.NewListWatchFromClient(rc, "pods", metav1.NamespaceAll, onNode), &corev1.Pod{}, transformLocalPod, cache.Indexers{uidIndex: podUID}},
		{&s.peers, cache.NewListWatchFromClient(rc, "pods", metav1.NamespaceAll, peerPods), &corev1.Pod{}, transformPeerPod, cache.Indexers{ipIndex: addressIndex}},
		{&s.services, cache.NewListWatchFromClient(rc, "services", metav1.NamespaceAll, services), &corev1.Service{}, transformService, cache.Indexers{ipIndex: addressIndex}},
	} {
		var err error
		if *inf.to, err = newInformer(inf.lw, inf.example, inf.transform, inf.indexers); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// start runs the informers and waits for their first sync, as Store.Start does.
func (s *watchListStore) start(timeout time.Duration) bool {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	infs := []cache.SharedIndexInformer{s.local, s.peers, s.services}
	for _, inf := range infs {
		s.wg.Go(func() { inf.RunWithContext(ctx) })
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, timeout)
	defer cancelSync()
	return cache.WaitForCacheSync(syncCtx.Done(), s.local.HasSynced, s.peers.HasSynced, s.services.HasSynced)
}

func (s *watchListStore) named(addr netip.Addr) bool {
	objs, err := s.peers.GetIndexer().ByIndex(ipIndex, addr.String())
	return err == nil && len(objs) > 0
}

func (s *watchListStore) stop() {
	s.cancel()
	s.wg.Wait()
}
