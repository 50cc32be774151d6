package receiver

import (
	"net/netip"

	"github.com/podnet/podnet/receiver/internal/attribution"
)

// peerMemo answers Peer once per address per batch: the logs converter and the metrics
// aggregator both name every event's peer, and a batch repeats the same few peers, while each
// lookup in the Kubernetes store takes a lock and walks an index. Local lookups pass through
// (resources already caches them). Reset between batches keeps it bounded and current.
type peerMemo struct {
	attribution.Attributor
	peers map[netip.Addr]attribution.Peer
}

func newPeerMemo(a attribution.Attributor) *peerMemo {
	return &peerMemo{Attributor: a, peers: map[netip.Addr]attribution.Peer{}}
}

func (m *peerMemo) Peer(addr netip.Addr) attribution.Peer {
	if p, ok := m.peers[addr]; ok {
		return p
	}
	p := m.Attributor.Peer(addr)
	m.peers[addr] = p
	return p
}

func (m *peerMemo) reset() { clear(m.peers) }
