package k8smeta

import (
	"net/netip"
	"unique"

	corev1 "k8s.io/api/core/v1"
)

// hostIPIndex indexes pods by their node's addresses (status.hostIPs): how the Store knows a
// node's address (NodeAddress, NodeAddrs) without a watch of Nodes. Every node running pods
// has one listed, the node running podnet at least podnet's.
const hostIPIndex = "hostIP"

// hostIPs are a node's addresses, canonical (see ipIndex), one per family at most; interned, so
// that a pod costs a pointer and a node's pods share one copy.
type hostIPs [2]string

func hostIPsOf(pod *corev1.Pod) unique.Handle[hostIPs] {
	var keys []string
	for _, ip := range pod.Status.HostIPs {
		keys = appendAddr(keys, ip.IP)
	}
	if len(pod.Status.HostIPs) == 0 {
		keys = appendAddr(keys, pod.Status.HostIP)
	}
	var out hostIPs
	copy(out[:], keys)
	if out[0] == "" {
		return unique.Handle[hostIPs]{}
	}
	return unique.Make(out)
}

// hostIPKeys indexes a pod (local or peer) by its node's addresses.
func hostIPKeys(obj any) ([]string, error) {
	var h unique.Handle[hostIPs]
	switch p := obj.(type) {
	case *localPod:
		h = p.host
	case *addressOwner:
		h = p.host
	}
	if h == (unique.Handle[hostIPs]{}) {
		return nil, nil
	}
	ips := h.Value()
	if ips[1] == "" {
		return ips[:1], nil
	}
	return ips[:], nil
}

// NodeAddress says whether addr is a node's, as far as the pods watched tell: with peer_pods
// all only (every pod of the cluster, so every node that runs one); false in the other modes.
func (s *Store) NodeAddress(addr netip.Addr) bool {
	if s.peers == nil {
		return false
	}
	keys, err := s.peers.GetIndexer().IndexKeys(hostIPIndex, addr.Unmap().String())
	return err == nil && len(keys) > 0
}

// NodeAddrs are this node's addresses, from its pods' status.hostIPs; none before they are
// listed.
func (s *Store) NodeAddrs() []netip.Addr {
	var out []netip.Addr
	for _, key := range s.local.GetIndexer().ListIndexFuncValues(hostIPIndex) {
		if addr, err := netip.ParseAddr(key); err == nil {
			out = append(out, addr)
		}
	}
	return out
}
