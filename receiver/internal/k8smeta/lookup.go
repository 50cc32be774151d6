package k8smeta

import (
	"net/netip"
	"time"

	"k8s.io/client-go/tools/cache"
)

// PodByUID returns a pod on this node, also one deleted since (Gone; see gonePods).
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
	p, ok = s.gone.get(uid)
	return p, ok, ok
}

// PeerByIP returns the current owner of addr (PeerAt now).
func (s *Store) PeerByIP(addr netip.Addr) (Peer, bool) {
	p, _, ok := s.PeerAt(addr, time.Now().UnixNano())
	return p, ok
}

// PeerAt returns the Service whose ClusterIP, or else the pod whose IP, addr was at time at
// (Unix ns), as far as peer_pods names pods: any pod (all), pods in EndpointSlices
// (endpoints), none. hostNetwork pods are never returned (see transformPeerPod). span is the
// time over which the answer holds: an address changes hands when its owner goes and a new pod
// (or Service) gets it, and the Store remembers the last maxEndedHoldings hand-overs it saw,
// each at the time it saw it. Before the first of an address, its current owner is returned.
func (s *Store) PeerAt(addr netip.Addr, at int64) (Peer, Span, bool) {
	key := addr.Unmap().String()
	p, span, ok := s.history.ownerAt(key, at)
	if ok {
		return p, span, true
	}
	p, ok = s.currentPeer(key)
	return p, span, ok
}

func (s *Store) currentPeer(key string) (Peer, bool) {
	if svc, ok := addressOwnerAt(s.services, key); ok {
		return Peer{Kind: PeerService, Name: svc.Name, Namespace: svc.Namespace, UID: string(svc.UID)}, true
	}
	if s.peers != nil { // peer_pods all
		if pod, ok := addressOwnerAt(s.peers, key); ok {
			return Peer{Kind: PeerPod, Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID)}, true
		}
	}
	if s.peerPods == PeerPodsEndpoints {
		return s.endpointPodAt(key)
	}
	return Peer{}, false
}

// ServiceReadyEndpoints returns how many ready endpoints the EndpointSlices of a Service
// list, summed over its slices (both families of a dual-stack Service). known is false until
// the EndpointSlices have synced, and for good once the account turns out not to be allowed
// to read them. A Service without slices has 0 ready endpoints, known: kube-proxy has nowhere
// to send its traffic either, whether the Service's selector matches no pod or it has no
// selector and nobody wrote slices for it. The Service itself is not checked to exist.
func (s *Store) ServiceReadyEndpoints(namespace, service string) (ready int, known bool) {
	if s.slicesDenied.Load() || !s.slices.HasSynced() {
		return 0, false
	}
	objs, err := s.slices.GetIndexer().ByIndex(serviceIndex, serviceKey(namespace, service))
	if err != nil {
		return 0, false
	}
	for _, obj := range objs {
		if slice, ok := obj.(*serviceSlice); ok {
			ready += slice.ready
		}
	}
	return ready, true
}

// addressOwnerAt returns the object holding key. While a pod terminates, its IP may
// already belong to its successor: the one not going away wins.
func addressOwnerAt(inf cache.SharedIndexInformer, key string) (*addressOwner, bool) {
	objs, err := inf.GetIndexer().ByIndex(ipIndex, key)
	if err != nil {
		return nil, false
	}
	var found *addressOwner
	for _, obj := range objs {
		a, ok := obj.(*addressOwner)
		if ok && (found == nil || (found.DeletionTimestamp != nil && a.DeletionTimestamp == nil)) {
			found = a
		}
	}
	return found, found != nil
}

func podUID(obj any) ([]string, error) {
	p, ok := obj.(*localPod)
	if !ok {
		return nil, nil
	}
	return []string{string(p.UID)}, nil
}
