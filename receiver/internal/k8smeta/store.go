// Package k8smeta keeps the Kubernetes metadata that attributes connections: the pods on
// this node (by UID, with their containers), every pod and Service in the cluster by IP, and
// how many ready endpoints each Service has. It is fed by informers and keeps answering from
// what it has when the API server is unreachable.
package k8smeta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// uidIndex indexes local pods by UID, which is how the receiver finds them (cgroup paths).
const uidIndex = "uid"

// Options tune a Store.
type Options struct {
	// NodeName is the node whose pods are local (spec.nodeName); required.
	NodeName string
	// PeerPods says which remote pods are named, and so whether every pod of the cluster is
	// watched; empty means PeerPodsAll.
	PeerPods PeerPods
	// SyncTimeout bounds how long Start (WaitSynced) waits for the first listing, counted
	// from Run; 0 means 10s.
	SyncTimeout time.Duration
	// OnStatus is told of API server trouble (an error) and recovery (nil), on changes
	// only; for componentstatus Recoverable/OK. It is called from informer goroutines, one
	// call at a time, and must not block. May be nil.
	OnStatus func(error)
	// OnOptionalDenied is told, once, why the Store goes without metadata that the account
	// may not read and that attribution can do without (EndpointSlices: ServiceReadyEndpoints
	// then answers unknown); for a log line. OnStatus is not told: nothing is wrong with the
	// API server. Called from an informer goroutine; must not block. May be nil.
	OnOptionalDenied func(error)
	// OnCallFailed is told of every list or watch call that failed (retried by the Store or
	// the informer), except calls cut short by Stop and an optional resource's denial; for a
	// counter that outlives OnStatus's transitions. Called from informer goroutines; must not
	// block. May be nil.
	OnCallFailed func()
	// UserAgent names podnet's requests in the API server's audit and request logs (unless the
	// kubeconfig names them); empty means "podnet". Without one, client-go sends Go's default
	// (found by an independent check: an SRE looking for who lists every pod could not tell).
	UserAgent string
}

// Store answers metadata lookups from informer caches. Lookups are safe at any time, also
// before Start and after Stop, and never block on the API server.
type Store struct {
	httpClient  *http.Client
	syncTimeout time.Duration

	peerPods PeerPods
	// peers is nil unless peerPods is PeerPodsAll: no cluster-wide pod watch otherwise.
	local, peers, services cache.SharedIndexInformer
	// slices is optional: without access to EndpointSlices the Store names local pods and
	// Services as well; ServiceReadyEndpoints is unknown, and with PeerPodsEndpoints no remote
	// pod is named (see denySlices).
	slices       cache.SharedIndexInformer
	slicesDenied atomic.Bool
	// history names the owners that let an address go since the Store started (peer pods,
	// Services): lookups are by the time a connection began (PeerAt).
	history *ipHistory
	// listings are the required informers, with their parts in Start's wait (listing).
	listings            []listing
	health              *health
	slicesHistorySynced cache.InformerSynced // with PeerPodsEndpoints
	// gone are this node's recently deleted pods, still named for their sockets' last events.
	gone             gonePods
	stopSlices       context.CancelFunc
	onOptionalDenied func(error)

	// ctx is the informers' (Stop ends it); syncDeadline is when WaitSynced gives up. Run
	// sets both.
	ctx          context.Context
	syncDeadline time.Time
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// NewStore prepares the informers; nothing talks to the API server before Run (or Start).
func NewStore(cfg *rest.Config, opts Options) (*Store, error) {
	if opts.NodeName == "" {
		return nil, errors.New("kubernetes metadata: node name is empty")
	}
	if err := opts.PeerPods.validate(); err != nil {
		return nil, fmt.Errorf("kubernetes metadata: %w", err)
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 10 * time.Second
	}
	if opts.OnStatus == nil {
		opts.OnStatus = func(error) {}
	}
	if opts.OnOptionalDenied == nil {
		opts.OnOptionalDenied = func(error) {}
	}
	if opts.OnCallFailed == nil {
		opts.OnCallFailed = func() {}
	}
	cfg = protobufConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = opts.UserAgent
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "podnet"
	}
	// An HTTP client of our own, so that Stop can close its idle connections.
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	h := newHealth(opts.OnStatus, opts.OnCallFailed)
	rc := client.CoreV1().RESTClient()
	onNode := fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
	s := &Store{
		httpClient: httpClient, syncTimeout: opts.SyncTimeout, onOptionalDenied: opts.OnOptionalDenied,
		peerPods: opts.PeerPods.orAll(), history: newIPHistory(), gone: newGonePods(), health: h,
	}
	localName := "pods on node " + opts.NodeName
	s.local, err = newInformer(
		h.observe(localName, cache.NewFilteredListWatchFromClient(rc, "pods", metav1.NamespaceAll, func(o *metav1.ListOptions) { o.FieldSelector = onNode })),
		&corev1.Pod{}, transformLocalPod, cache.Indexers{uidIndex: podUID, hostIPIndex: hostIPKeys})
	if err != nil {
		return nil, err
	}
	if err := s.gone.watchGone(s.local); err != nil {
		return nil, err
	}
	s.listings = append(s.listings, listing{localName, s.local, s.local.HasSynced})
	if s.peerPods == PeerPodsAll {
		// Every pod of the cluster: the one list large enough to page (paged_list.go).
		s.peers, err = newInformer(
			h.observe("pods", paged(cache.NewFilteredListWatchFromClient(rc, "pods", metav1.NamespaceAll, func(o *metav1.ListOptions) { o.FieldSelector = peerPodSelector }), transformPeerPod)),
			&corev1.Pod{}, transformPeerPod, cache.Indexers{ipIndex: addressIndex, hostIPIndex: hostIPKeys})
		if err != nil {
			return nil, err
		}
		if err := s.historyOf("pods", s.peers, ownerHolders(PeerPod)); err != nil {
			return nil, err
		}
	}
	s.services, err = newInformer(
		h.observe("services", cache.NewFilteredListWatchFromClient(rc, "services", metav1.NamespaceAll, func(o *metav1.ListOptions) { o.FieldSelector = serviceSelector })),
		&corev1.Service{}, transformService, cache.Indexers{ipIndex: addressIndex})
	if err != nil {
		return nil, err
	}
	if err := s.historyOf("services", s.services, ownerHolders(PeerService)); err != nil {
		return nil, err
	}
	selector, transform, indexers := sliceSelector, transformEndpointSlice, cache.Indexers{serviceIndex: sliceService}
	if s.peerPods == PeerPodsEndpoints {
		selector, transform = allServicesSelector, transformEndpointSliceWithPods
		indexers[ipIndex] = endpointAddresses
	}
	s.slices, err = newInformer(
		h.observeOptional("endpointslices", cache.NewFilteredListWatchFromClient(client.DiscoveryV1().RESTClient(), "endpointslices", metav1.NamespaceAll, func(o *metav1.ListOptions) { o.LabelSelector = selector }), s.denySlices),
		&discoveryv1.EndpointSlice{}, transform, indexers)
	if err != nil {
		return nil, err
	}
	if s.peerPods == PeerPodsEndpoints {
		reg, err := s.watchHandOvers(s.slices, s.followedSliceHolders)
		if err != nil {
			return nil, err
		}
		s.slicesHistorySynced = reg.HasSynced
	}
	return s, nil
}

// historyOf feeds the address history from inf, the required informer health knows as name;
// it has listed once the history has the first listing too.
func (s *Store) historyOf(name string, inf cache.SharedIndexInformer, holdersOf func(obj any) []holder) error {
	reg, err := s.watchHandOvers(inf, holdersOf)
	if err != nil {
		return err
	}
	s.listings = append(s.listings, listing{name, inf, func() bool { return inf.HasSynced() && reg.HasSynced() }})
	return nil
}

// listing is a required informer (one that must sync for the Store to count as synced) and its
// part in Start's wait: its name in health, and whether it (and the address history it feeds)
// has had its first listing.
type listing struct {
	name   string
	inf    cache.SharedIndexInformer
	listed cache.InformerSynced
}

func newInformer(lw cache.ListerWatcher, example runtime.Object, transform cache.TransformFunc, indexers cache.Indexers) (cache.SharedIndexInformer, error) {
	inf := cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{Indexers: indexers})
	return inf, inf.SetTransform(transform)
}

// Start runs the informers and waits up to the sync timeout for their first listing: Run,
// then WaitSynced.
func (s *Store) Start() bool {
	s.Run()
	return s.WaitSynced(context.Background())
}

// Run starts the informers, once per Store, and returns at once: their first listing
// arrives in the background (WaitSynced waits for it) while lookups answer from whatever has
// arrived. The sync timeout counts from here.
func (s *Store) Run() {
	// client-go would log every failed retry itself; OnStatus reports them instead.
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logr.Discard()))
	s.ctx, s.cancel = ctx, cancel
	s.syncDeadline = time.Now().Add(s.syncTimeout)
	for _, l := range s.listings {
		s.wg.Go(func() { l.inf.RunWithContext(ctx) })
	}
	slicesCtx, stopSlices := context.WithCancel(ctx)
	s.stopSlices = stopSlices
	s.wg.Go(func() { s.slices.RunWithContext(slicesCtx) })
}

// WaitSynced waits for the informers' first listing until the sync timeout (counted from Run)
// has passed, ctx is done or Stop is called, and returns whether the pods and Services synced; if not,
// they keep trying in the background (OnStatus says why). The EndpointSlices are waited for
// too, unless the account may not read them, but do not count: pods and Services are named
// without them. An informer the API server refuses (RBAC) is not waited for either: the
// answer would not change within the timeout (an account refused Services held every Start
// for the whole 10 s). Before Run it waits for nothing and returns false.
func (s *Store) WaitSynced(ctx context.Context) bool {
	if s.ctx == nil {
		return false
	}
	syncCtx, cancelSync := context.WithDeadline(s.ctx, s.syncDeadline)
	defer cancelSync()
	defer context.AfterFunc(ctx, cancelSync)()
	cache.WaitForCacheSync(syncCtx.Done(), s.settled)
	return s.synced()
}

// Unlisted names what has not had its first listing yet, for Start's message when the wait ends
// first: the names come from what is listed.
func (s *Store) Unlisted() []string {
	var out []string
	if !s.local.HasSynced() {
		out = append(out, "this node's pods")
	}
	if s.peers != nil && !s.peers.HasSynced() {
		out = append(out, "the cluster's pods")
	}
	if !s.services.HasSynced() {
		out = append(out, "services")
	}
	if !s.slicesSettled() {
		out = append(out, "endpointslices")
	}
	return out
}

// synced: the required informers have listed, and with PeerPodsEndpoints the EndpointSlices
// have too (or are denied), since remote pods are named from them.
func (s *Store) synced() bool {
	for _, l := range s.listings {
		if !l.listed() {
			return false
		}
	}
	return s.slicesNamingSynced()
}

// settled is WaitSynced's condition: synced, but for required informers the API server
// refused; and the EndpointSlices listed or denied.
func (s *Store) settled() bool {
	for _, l := range s.listings {
		if !l.listed() && !s.health.refusedFor(l.name) {
			return false
		}
	}
	return s.slicesSettled() && s.slicesNamingSynced()
}

// slicesNamingSynced: with PeerPodsEndpoints, remote pods are named from the EndpointSlices,
// so they count as required unless denied.
func (s *Store) slicesNamingSynced() bool {
	return s.peerPods != PeerPodsEndpoints || s.slicesDenied.Load() || (s.slices.HasSynced() && s.slicesHistorySynced())
}

// Stop ends the informers (and a WaitSynced) and waits for their goroutines. Safe before
// Run and twice.
func (s *Store) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.httpClient.CloseIdleConnections()
}
