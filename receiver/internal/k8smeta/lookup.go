package k8smeta

import (
	"net/netip"
	"slices"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// PodByUID returns a pod on this node, also one deleted since (Gone; see gonePods), by the UID
// its cgroups carry: its metadata.uid, or for a static pod the kubelet's UID of it, which its
// mirror pod's kubernetes.io/config.mirror annotation holds. The Pod's UID is always the API's
// metadata.uid, the one peers and k8s_attributes know it by.
func (s *Store) PodByUID(uid string) (Pod, bool) {
	p, gone, ok := s.localPod(uid)
	if !ok {
		return Pod{}, false
	}
	return p.pod(gone), true
}

// ContainerName returns the name of a container of a pod on this node, by the bare
// container ID found in its cgroup path.
func (s *Store) ContainerName(podUID, containerID string) (string, bool) {
	p, _, ok := s.localPod(podUID)
	if !ok {
		return "", false
	}
	for _, c := range p.containers {
		if c.id == containerID {
			return c.name, true
		}
	}
	return "", false
}

func (s *Store) localPod(uid string) (p *localPod, gone, ok bool) {
	objs, err := s.local.GetIndexer().ByIndex(uidIndex, uid)
	if err == nil && len(objs) > 0 {
		p, ok = objs[0].(*localPod)
		return p, false, ok
	}
	p, ok = s.gone.Get(uid)
	return p, ok, ok
}

// PeerByIP returns the current owner of addr (PeerAt now).
func (s *Store) PeerByIP(addr netip.Addr) (Peer, bool) {
	p, _, ok := s.PeerAt(addr, time.Now().UnixNano())
	return p, ok
}

// PeerAt returns the Service whose ClusterIP, or the pod whose IP, addr was at time at (Unix
// ns), as far as peer_pods names pods: any pod (all), pods in EndpointSlices (endpoints), none.
// hostNetwork pods are never returned (see transformPeerPod). Addresses change hands: a pod's
// IP goes to a new pod once it is deleted, often within seconds. The answer comes from the
// address history (ip_history.go), with the span over which it holds; nobody (ok false) when
// nobody held the address then, as far as the Store knows.
func (s *Store) PeerAt(addr netip.Addr, at int64) (Peer, Span, bool) {
	return s.history.ownerAt(addr.Unmap().String(), at)
}

// ServiceReadyEndpoints returns how many ready endpoints kube-proxy has for a connection to a
// Service dialled at dialled (one of its ClusterIPs and ports): kube-proxy programs each address
// family apart and finds a Service port's endpoints by its name, so they are those of the
// Service's slices of dialled's family that list a TCP port of that name, summed over the
// slices. known is false until the EndpointSlices have synced, for good once the account turns
// out not to be allowed to read them, and when the Service (deleted since) or a TCP port of it
// at dialled's port is not known: kube-proxy rejects a port a Service does not have for another
// reason. A Service without such slices has 0 ready endpoints, known: kube-proxy has nowhere to
// send its traffic either, whether the Service's selector matches no pod or it has no selector
// and nobody wrote slices for it.
func (s *Store) ServiceReadyEndpoints(namespace, service string, dialled netip.AddrPort) (ready int, known bool) {
	if s.slicesDenied.Load() || !s.slices.HasSynced() {
		return 0, false
	}
	port, ok := s.servicePortName(namespace, service, dialled.Port())
	if !ok {
		return 0, false
	}
	family := discoveryv1.AddressTypeIPv4
	if dialled.Addr().Unmap().Is6() {
		family = discoveryv1.AddressTypeIPv6
	}
	objs, err := s.slices.GetIndexer().ByIndex(serviceIndex, serviceKey(namespace, service))
	if err != nil {
		return 0, false
	}
	for _, obj := range objs {
		if slice, ok := obj.(*serviceSlice); ok && slice.family == family && slices.Contains(slice.ports, port) {
			ready += slice.ready
		}
	}
	return ready, true
}

// servicePortName is the name of a Service's TCP port number port.
func (s *Store) servicePortName(namespace, service string, port uint16) (string, bool) {
	obj, exists, err := s.services.GetIndexer().GetByKey(serviceKey(namespace, service))
	if err != nil || !exists {
		return "", false
	}
	svc, ok := obj.(*addressOwner)
	if !ok {
		return "", false
	}
	for _, p := range svc.ports {
		if p.port == int32(port) {
			return p.name, true
		}
	}
	return "", false
}

// podUID indexes a local pod by the UIDs its cgroups may carry: its metadata.uid, and a
// static pod's UID inside the kubelet (mirrorOf).
func podUID(obj any) ([]string, error) {
	p, ok := obj.(*localPod)
	if !ok {
		return nil, nil
	}
	if p.mirrorOf != "" {
		return []string{string(p.UID), p.mirrorOf}, nil
	}
	return []string{string(p.UID)}, nil
}
