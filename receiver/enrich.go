//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// enrichedEvent is an event with its attribution: named once at ingest, then read as fields
// by the logs converter and the metrics aggregator.
type enrichedEvent struct {
	event.Event
	local *localEnd
	peer  attribution.Peer
	// backend names Backend, the address a connection to a Service was translated to (its pod).
	backend attribution.Peer
	// serverName: for a client's connect or close to a peer that is neither a pod nor a
	// Service, the DNS name its pod resolved to the peer (dns_names); "" when none.
	serverName string
}

// withBackend is the peer as records and series name it: a Service whose connection was
// translated to a pod gets that backend pod beside it (and the pod's namespace, where the
// Service's is unknown). A backend pod in another namespace than its Service's (a selectorless
// Service whose EndpointSlice lists another namespace's pod) is named by its uid alone: the
// record's one peer namespace is the Service's, and the pod's name beside it would name a pod
// of that namespace (found by an independent check). backend is the zero Peer when there is none.
func withBackend(peer, backend attribution.Peer) attribution.Peer {
	if backend.PodName == "" || peer.PodName != "" {
		return peer
	}
	switch peer.Namespace {
	case "":
		peer.Namespace = backend.Namespace
		peer.PodName, peer.PodUID = backend.PodName, backend.PodUID
	case backend.Namespace:
		peer.PodName, peer.PodUID = backend.PodName, backend.PodUID
	default:
		peer.PodUID = backend.PodUID
	}
	return peer
}

// naming is what names events: the attribution of both ends, and the DNS names of servers
// outside the cluster (nil with dns_names off).
type naming struct {
	attr  attribution.Attributor
	names serverNames
	// connectsAndCloses: the ring carries both, so a close can be named as its connect was
	// (connectNames); otherwise its entries would only wait for closes that never come.
	connectsAndCloses bool
}

// enricher makes an enricher for one goroutine (the ring reader's, the aggregates drain's).
func (nm naming) enricher(cfg *Config) *enricher {
	en := newEnricher(newResources(cfg, nm.attr), nm.attr, nm.names)
	if !nm.connectsAndCloses {
		en.connected = nil
	}
	return en
}

// enricher names the local end and the peer of every event, asking attribution once per
// local end and once per peer address per batch: a batch repeats the same few of each, and a
// Kubernetes lookup takes a lock and walks an index. The tables are cleared per batch, so
// they stay bounded and names stay current. One goroutine owns it.
type enricher struct {
	res   *resources
	attr  attribution.Attributor
	names serverNames // nil with dns_names off
	// connected names each open connection's close as its connect was named (with names).
	connected *connectNames
	locals    map[resourceKey]*localEnd
	peers     map[netip.Addr]peerAsOf
	during    map[netip.Addr]attribution.Peer // peerDuring's, per drain
	// foundAt is when the start-up scan found the connections that predate podnet (its first
	// found event's time); 0 before.
	foundAt int64
}

// peerAsOf is an address's peer as of some time, and the span over which that holds: most
// addresses never change hands, and one lookup serves a batch.
type peerAsOf struct {
	peer attribution.Peer
	span attribution.Span
}

func newEnricher(res *resources, attr attribution.Attributor, names serverNames) *enricher {
	return &enricher{
		res:       res,
		attr:      attr,
		names:     names,
		connected: newConnectNames(),
		locals:    map[resourceKey]*localEnd{},
		peers:     map[netip.Addr]peerAsOf{},
		during:    map[netip.Addr]attribution.Peer{},
	}
}

// enrich attributes one batch in place.
func (en *enricher) enrich(events []enrichedEvent) {
	en.reset()
	for i := range events {
		e := &events[i]
		e.local = en.local(resourceKey{netnsIno: e.NetnsIno, cgroupID: e.CgroupID})
		if e.Type == event.Found && en.foundAt == 0 {
			en.foundAt = int64(e.Time)
		}
		at := en.began(&e.Event)
		dialled := e.Peer
		if e.Dialled.IsValid() {
			// Socket-level load balancing: the Service is what was dialled, the peer its backend.
			dialled = e.Dialled
		}
		e.peer = en.peer(dialled.Addr(), at)
		// A connect translated to a backend reached one, whatever the Service's slices say by
		// now (a terminating pod that refused it: found by an independent check, "no ready
		// endpoints" beside the backend that refused).
		if e.Failed() && e.peer.ServiceName != "" && !e.Backend.IsValid() && !e.Dialled.IsValid() {
			e.peer.NoReadyEndpoints = en.attr.NoReadyEndpoints(e.peer, dialled)
		}
		// Every field is set, also to nothing: the reader decodes into the last batch's slots.
		e.backend = attribution.Peer{}
		if e.Backend.IsValid() {
			e.backend = en.peer(e.Backend.Addr(), at)
		}
		e.serverName = en.serverName(&e.Event, &e.peer)
	}
}

// reset starts a new batch (or aggregate drain): the DNS responses that arrived before its
// events (or the aggregates' connections) are taken in first.
func (en *enricher) reset() {
	clear(en.locals)
	clear(en.peers)
	clear(en.during)
	if en.names != nil {
		en.names.Refresh()
	}
}

func (en *enricher) local(k resourceKey) *localEnd {
	if l, ok := en.locals[k]; ok {
		return l
	}
	l := en.res.get(k)
	en.locals[k] = l
	return l
}

// peer names who had addr at time at (Unix ns).
func (en *enricher) peer(addr netip.Addr, at int64) attribution.Peer {
	if p, ok := en.peers[addr]; ok && p.span.Holds(at) {
		return p.peer
	}
	p, span := en.attr.Peer(addr, at)
	en.peers[addr] = peerAsOf{p, span}
	return p
}

// maxHoldersBack bounds how many earlier holders of an address peerDuring asks for.
const maxHoldersBack = 4

// peerDuring names a drained aggregate's peer address: its holder now, or, when that names
// nothing, the latest holder since the last drain that names something, where the address
// changed hands since (the aggregate counts the interval's connections, not now's). A client
// pod deleted within the interval, a Job's pod that came and went in it, named its servers'
// records and no series (found by an independent check: a Job's 3 connections in an unnamed
// series, a deleted pod's last 13 of 49).
func (en *enricher) peerDuring(addr netip.Addr, since, now int64) attribution.Peer {
	if p, ok := en.during[addr]; ok {
		return p
	}
	p, span := en.attr.Peer(addr, now)
	for range maxHoldersBack {
		if namedByKubernetes(&p) || span.From <= since || span.From == attribution.Always.From {
			break
		}
		earlier, earlierSpan := en.attr.Peer(addr, span.From-1)
		if namedByKubernetes(&earlier) {
			p = earlier
			break
		}
		span = earlierSpan
	}
	en.during[addr] = p
	return p
}

// began is when an event's connection began, which names its peer: the peer's address may
// have gone to another pod since (a close read after its pod was deleted and the IP reused, or
// a connect that timed out against a pod replaced meanwhile: a failed connect's start is when
// its SYN was sent). A connection found at Start (Found, also on its close) is named as its
// found record was, when the scan found it (named at its close, it took the name of a pod
// given the address after the first had gone: found by an independent check). Otherwise
// unknown (a connect that failed before its SYN), the event's own time.
func (en *enricher) began(e *event.Event) int64 {
	switch {
	case e.Start != 0:
		return int64(e.Start)
	case e.Found && en.foundAt != 0 && e.Type == event.Close:
		return en.foundAt
	}
	return int64(e.Time)
}

// failedConnectWindow is how far before a failed connect's end its name is looked for when its
// start is unknown (its SYN sent outside process context, or its entry evicted): the
// connect began up to the kernel's default SYN retry time (127 s) earlier, and the name had to be
// valid then, not when the connect gave up.
const failedConnectWindow = uint64(130e9)

// serverName is the DNS name of a client's connect or close to a peer that is neither a pod nor
// a Service: valid when the connection began (a close is named as its connect was, however long
// ago the answer's TTL ran out); "" otherwise.
func (en *enricher) serverName(e *event.Event, peer *attribution.Peer) string {
	if en.names == nil || e.Role != event.Client || (e.Type != event.Connect && e.Type != event.Close) {
		return ""
	}
	k := connTuple{netns: e.NetnsIno, local: e.Local, peer: e.Peer}
	connected, wasNamed := "", false
	if e.Type == event.Close {
		connected, wasNamed = en.connected.closed(k, e.BootStart) // taken whatever follows: the connection is over
	}
	switch {
	case e.Dialled.IsValid() || namedByKubernetes(peer):
		return ""
	case wasNamed:
		return connected
	}
	var name string
	switch {
	case e.Start != 0:
		name = en.names.Lookup(e.NetnsIno, e.Peer.Addr(), int64(e.Start))
	case e.Failed():
		return en.names.LookupDuring(e.NetnsIno, e.Peer.Addr(), int64(e.Time-min(e.Time, failedConnectWindow)), int64(e.Time))
	default:
		name = en.names.Lookup(e.NetnsIno, e.Peer.Addr(), int64(e.Time))
	}
	if e.Type == event.Connect && !e.Failed() {
		en.connected.connected(k, e.BootStart, name)
	}
	return name
}

// serverNameDuring is serverName for a drained aggregate of a client's connections to peer
// from netns: the name valid at some time since the last drain.
func (en *enricher) serverNameDuring(netns uint32, peer netip.Addr, peerID *attribution.Peer, from, to int64) string {
	if en.names == nil || namedByKubernetes(peerID) {
		return ""
	}
	return en.names.LookupDuring(netns, peer, from, to)
}

// namedByKubernetes: a pod or Service peer keeps its Kubernetes names and gets no DNS name.
func namedByKubernetes(p *attribution.Peer) bool { return p.PodName != "" || p.ServiceName != "" }
