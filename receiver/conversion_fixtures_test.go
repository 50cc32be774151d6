package podnetreceiver

import (
	"flag"
	"net/netip"

	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

const t0 = uint64(1_700_000_000_000_000_000)

// fixtureEvents is one of each kind of event, from two local ends (network namespaces).
func fixtureEvents() []event.Event {
	comm := func(s string) (c [16]byte) { copy(c[:], s); return c }
	return []event.Event{
		{
			Type: event.Connect, Role: event.Client, Time: t0, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"),
			Local: netip.MustParseAddrPort("10.1.0.5:40000"), Peer: netip.MustParseAddrPort("10.1.0.9:8080"), HandshakeMicros: 312,
		},
		{
			Type: event.Accept, Role: event.Server, Time: t0 + 1000, Start: t0 + 500, NetnsIno: 4026532002, CgroupID: 9002, PID: 77, Comm: comm("nginx"),
			Local: netip.MustParseAddrPort("10.1.0.9:8080"), Peer: netip.MustParseAddrPort("10.1.0.5:40000"), HandshakeMicros: 1000290, SynRetransmits: 1,
		},
		{
			Type: event.Close, CloseReason: event.CloseNormal, Role: event.Client, Time: t0 + 2_000_000, Start: t0, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"),
			Local: netip.MustParseAddrPort("10.1.0.5:40000"), Peer: netip.MustParseAddrPort("10.1.0.9:8080"),
			BytesSent: 80, BytesReceived: 612, SRTTMicros: 150, Retransmits: 1,
		},
		{
			Type: event.Connect, Role: event.Client, Time: t0 + 3000, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"), Errno: 111,
			Local: netip.MustParseAddrPort("[fd00::5]:40001"), Peer: netip.MustParseAddrPort("[fd00::9]:9"),
		},
		// A Service, translated by the node's DNAT to web-0: connect and close name both.
		{
			Type: event.Connect, Role: event.Client, Time: t0 + 4000, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"),
			Local: netip.MustParseAddrPort("10.1.0.5:40002"), Peer: netip.MustParseAddrPort("10.96.0.10:80"),
			Backend: netip.MustParseAddrPort("10.1.0.9:8080"),
		},
		{
			Type: event.Close, CloseReason: event.CloseResetReceived, Role: event.Client, Time: t0 + 3_000_000, Start: t0 + 4000, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"),
			Local: netip.MustParseAddrPort("10.1.0.5:40002"), Peer: netip.MustParseAddrPort("10.96.0.10:80"),
			Backend: netip.MustParseAddrPort("10.1.0.9:8080"), BytesSent: 80, BytesReceived: 612, SRTTMicros: 150,
		},
		// A Service without ready endpoints: kube-proxy rejects the connect.
		{
			Type: event.Connect, Role: event.Client, Time: t0 + 5000, NetnsIno: 4026532001, CgroupID: 9001, PID: 1234, Comm: comm("curl"), Errno: 111,
			Local: netip.MustParseAddrPort("10.1.0.5:40003"), Peer: netip.MustParseAddrPort("10.96.0.11:80"),
		},
	}
}

// fixedPeers names 10.1.0.9 as a pod and 10.96.0.10 and .11 as Services (the second without
// ready endpoints), the way Kubernetes attribution would.
type fixedPeers struct{ attribution.None }

func (fixedPeers) Peer(a netip.Addr, _ int64) (attribution.Peer, attribution.Span) {
	return fixedPeer(a), attribution.Always
}

func fixedPeer(a netip.Addr) attribution.Peer {
	switch a {
	case netip.MustParseAddr("10.1.0.9"):
		return attribution.Peer{PodName: "web-0", PodUID: "uid-web-0", Namespace: "shop"}
	case netip.MustParseAddr("10.96.0.10"):
		return attribution.Peer{ServiceName: "web", Namespace: "shop"}
	case netip.MustParseAddr("10.96.0.11"):
		return attribution.Peer{ServiceName: "empty", Namespace: "shop"}
	}
	return attribution.Peer{}
}

// NoReadyEndpoints: the Service at 10.96.0.11 has none on its port 80.
func (fixedPeers) NoReadyEndpoints(p attribution.Peer, dialled netip.AddrPort) bool {
	return p.ServiceName == "empty" && dialled == netip.MustParseAddrPort("10.96.0.11:80")
}

func fixtureResources(cfg *Config) *resources {
	r := newResources(cfg, fixedPeers{})
	r.hostName, r.nodeName = "node-a", "node-a"
	return r
}

var fixtureSettings = receivertest.NewNopSettings(metadata.Type)
