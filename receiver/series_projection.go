//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"

	"github.com/podnet/podnet/receiver/internal/event"
)

// project is k without the attributes the series drop.
func (a seriesAttrs) project(k seriesKey) seriesKey {
	if !a.role {
		k.role = event.Client // one value for all: never emitted
	}
	if !a.netType {
		k.ipv6 = false
	}
	if !a.peer {
		k.peer = netip.Addr{}
	}
	if !a.port {
		k.serverPort = 0
	}
	if !a.errType {
		k.errno = 0
	}
	for _, p := range []*struct{ ns, pod, uid, svc *string }{
		{&k.peerID.Namespace, &k.peerID.PodName, &k.peerID.PodUID, &k.peerID.ServiceName},
		{&k.backendID.Namespace, &k.backendID.PodName, &k.backendID.PodUID, &k.backendID.ServiceName},
	} {
		if !a.peerNamespace {
			*p.ns = ""
		}
		if !a.peerPod {
			*p.pod, *p.uid = "", ""
		}
		if !a.peerService {
			*p.svc = ""
		}
	}
	if !a.backend {
		k.backend = netip.Addr{}
	}
	if !a.serverAddress {
		k.serverName = ""
	}
	return k
}
