package k8smeta

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// serviceIndex indexes EndpointSlices by "namespace/service" of the Service they serve.
const serviceIndex = "service"

// sliceSelector picks the EndpointSlices kube-proxy routes a ClusterIP's traffic by: those of a
// Service (the kubernetes.io/service-name label) that is not headless. A headless Service has
// no ClusterIP, so its slices could never answer ServiceReadyEndpoints; they stay unwatched.
const sliceSelector = discoveryv1.LabelServiceName + ",!" + corev1.IsHeadlessService

// serviceSlice is what the EndpointSlice informer stores per slice: its identity, its Service,
// its address family, the names of its TCP ports and how many of its endpoints are ready.
// Addresses, topology and hints are not kept: a slice may list up to 1000 endpoints, and only
// the count is asked for, of the slices kube-proxy would route one connection by.
type serviceSlice struct {
	metav1.ObjectMeta // see strippedMeta
	service           string
	family            discoveryv1.AddressType
	ports             []string // TCP port names: kube-proxy matches a Service port to them by name
	ready             int
	pods              []endpointPod // with peer_pods endpoints only
}

// GetObjectKind and DeepCopyObject: see localPod's.
func (s *serviceSlice) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (s *serviceSlice) DeepCopyObject() runtime.Object {
	pods := make([]endpointPod, len(s.pods))
	for i, p := range s.pods {
		pods[i] = p
		pods[i].ips = append([]string(nil), p.ips...)
	}
	return &serviceSlice{
		ObjectMeta: *s.DeepCopy(), service: s.service, family: s.family,
		ports: append([]string(nil), s.ports...), ready: s.ready, pods: pods,
	}
}

// transformEndpointSlice counts a slice's ready endpoints and keeps its family and TCP port
// names, as kube-proxy reads them (pkg/proxy/endpointslicecache.go): a port without a number is
// ignored, an endpoint without an address too. A nil name or protocol is the API's default
// ("", TCP). Ready follows the API's rule that a nil conditions.ready means ready (the
// EndpointSlice controller always sets it, other controllers may not). Serving-but-terminating
// endpoints are not counted, although kube-proxy falls back to them when a Service has no ready
// endpoint: a failed connect then still had "no ready endpoint", which is what the record says.
func transformEndpointSlice(obj any) (any, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &serviceSlice{
		ObjectMeta: strippedMeta(&slice.ObjectMeta), service: slice.Labels[discoveryv1.LabelServiceName],
		family: slice.AddressType,
	}
	for _, p := range slice.Ports {
		if p.Port == nil || *p.Port == 0 || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		out.ports = append(out.ports, name)
	}
	for _, ep := range slice.Endpoints {
		if len(ep.Addresses) > 0 && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
			out.ready++
		}
	}
	return out, nil
}

// sliceService indexes a slice under its Service; a slice of no Service (no label) under
// nothing.
func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*serviceSlice)
	if !ok || s.service == "" {
		return nil, nil
	}
	return []string{serviceKey(s.Namespace, s.service)}, nil
}

func serviceKey(namespace, service string) string { return namespace + "/" + service }

// denySlices stops the EndpointSlice informer for good when the account may not list or
// watch EndpointSlices: retrying would cost every node a forbidden request per backoff period
// for as long as the collector runs, and the answer only changes with the RBAC, after which
// a restart picks it up. ServiceReadyEndpoints answers unknown from then on.
func (s *Store) denySlices(err error) {
	if !s.slicesDenied.CompareAndSwap(false, true) {
		return
	}
	s.stopSlices()
	if s.peerPods == PeerPodsEndpoints {
		s.releaseSliceHolders()
	}
	named := "pods and Services are still named"
	if s.peerPods == PeerPodsEndpoints {
		named = "with peer_pods endpoints no remote pod is named either; Services and this node's pods still are"
	}
	s.onOptionalDenied(fmt.Errorf("%w: whether a Service has ready endpoints is unknown; %s (the collector's account needs list and watch on endpointslices in discovery.k8s.io: see examples/rbac.yaml, then restart the collector)", err, named))
}

// releaseSliceHolders ends, now, the holdings of the pods the slices named (peer_pods
// endpoints): they are no longer followed, so a pod deleted later would be named at its address
// for good, and so would every pod given that address after it (found by an independent check:
// an account with list but not watch on endpointslices, the pod deleted, another created at its
// address, the first named an hour later).
func (s *Store) releaseSliceHolders() {
	now := time.Now().UnixNano()
	for _, obj := range s.slices.GetIndexer().List() {
		for _, c := range sliceHolders(obj) {
			s.history.release(c.key, c.owner, now)
		}
	}
}

// followedSliceHolders are sliceHolders while the slices are followed; once they are denied,
// none, so that the listing's events still queued for the handlers claim nothing after
// releaseSliceHolders (a handler already past this check when the denial came can still claim:
// a window of one call).
func (s *Store) followedSliceHolders(obj any) []holder {
	if s.slicesDenied.Load() {
		return nil
	}
	return sliceHolders(obj)
}

// slicesSettled is the EndpointSlice informer's part in Start's wait: synced, or denied.
func (s *Store) slicesSettled() bool {
	return s.slicesDenied.Load() || s.slices.HasSynced()
}
