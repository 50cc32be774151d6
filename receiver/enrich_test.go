package podnetreceiver

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
	"github.com/podnet/podnet/receiver/internal/event"
)

// enrichAll attributes events with res (and its attributor) as the reader does per batch.
func enrichAll(res *resources, events []event.Event) []enrichedEvent {
	out := make([]enrichedEvent, len(events))
	for i := range events {
		out[i].Event = events[i]
	}
	newEnricher(res, res.attr, nil).enrich(out)
	return out
}

// countingAttributor counts the questions attribution is asked.
type countingAttributor struct {
	fixedPeers
	locals, peers int
}

func (c *countingAttributor) Local(uint32, uint64) attribution.Local {
	c.locals++
	return attribution.Local{PodUID: "uid"}
}

func (c *countingAttributor) Peer(a netip.Addr, at int64) (attribution.Peer, attribution.Span) {
	c.peers++
	return c.fixedPeers.Peer(a, at)
}

// Attribution is asked once per local end and once per peer address per batch, whatever
// the batch's size, and the answers travel with the events.
func TestEnrichAsksOncePerEndPerBatch(t *testing.T) {
	cfg := NewDefaultConfig()
	attr := &countingAttributor{}
	en := newEnricher(newResources(cfg, attr), attr, nil)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	en.enrich(events)
	// shortConnections: 8 client and 4 server namespaces; 8 client and 4 server addresses.
	assert.Equal(t, 12, attr.locals)
	assert.Equal(t, 12, attr.peers)
	for _, e := range events {
		assert.Equal(t, "uid", e.local.attr.PodUID)
		assert.Equal(t, resourceKey{netnsIno: e.NetnsIno, cgroupID: e.CgroupID}, e.local.key)
	}
	en.enrich(events)
	assert.Equal(t, 24, attr.peers, "a new batch asks again: names stay current")
}

// handedOver names 10.1.0.9 as web-0 before handOverAt and web-1 from then on, each answer
// with its span, as Kubernetes attribution does after an IP changed hands.
type handedOver struct {
	attribution.None
	asked int
}

const handOverAt = int64(5000)

func (h *handedOver) Peer(a netip.Addr, at int64) (attribution.Peer, attribution.Span) {
	h.asked++
	if at < handOverAt {
		return attribution.Peer{PodName: "web-0"}, attribution.Span{From: attribution.Always.From, To: handOverAt}
	}
	return attribution.Peer{PodName: "web-1"}, attribution.Span{From: handOverAt, To: attribution.Always.To}
}

// Each event's peer is named as of when its connection began (its start, else its own time),
// and one answer serves every event of a batch its span holds.
func TestEnrichNamesPeersWhenTheirConnectionsBegan(t *testing.T) {
	peer := netip.MustParseAddrPort("10.1.0.9:80")
	ev := func(start, at uint64) enrichedEvent {
		return enrichedEvent{Event: event.Event{Type: event.Close, Role: event.Client, Time: at, Start: start, Peer: peer}}
	}
	events := []enrichedEvent{
		ev(1000, 9000), // began before the hand-over, read after it
		ev(2000, 9100),
		ev(6000, 9200),
		ev(0, 4000), // start unknown: its own time
		ev(7000, 9300),
	}
	attr := &handedOver{}
	newEnricher(newResources(NewDefaultConfig(), attr), attr, nil).enrich(events)
	var got []string
	for _, e := range events {
		got = append(got, e.peer.PodName)
	}
	assert.Equal(t, []string{"web-0", "web-0", "web-1", "web-0", "web-1"}, got)
	assert.Equal(t, 4, attr.asked, "asked again only where the span of the last answer does not hold")
}

// BenchmarkEnrich is attribution's per-event cost at ingest, paid once for logs and metrics.
func BenchmarkEnrich(b *testing.B) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, podPeers{}), podPeers{}, nil)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, en.enrich)
}

// BenchmarkBatchPath is the whole per-event user-space cost of a batch with logs and metrics
// after decoding: attribution once, the metrics aggregation, the logs conversion.
func BenchmarkBatchPath(b *testing.B) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, podPeers{}), podPeers{}, nil)
	c := newLogsConverter(cfg.Events, "bench")
	m := newConnectionMetrics(cfg, fixtureSettings)
	events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
	perEvent(b, events, func(events []enrichedEvent) {
		en.enrich(events)
		m.add(events)
		c.convert(events, pcommon.Timestamp(t0))
	})
}

// lockedTable is dnsnames.Names' lookup side without the kernel: the table behind its mutex.
type lockedTable struct {
	mu sync.Mutex
	t  *dnsnames.Table
}

func (l *lockedTable) Refresh() {}

func (l *lockedTable) Lookup(netns uint32, addr netip.Addr, at int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.Lookup(netns, addr, at)
}

func (l *lockedTable) LookupDuring(netns uint32, addr netip.Addr, from, to int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.LookupDuring(netns, addr, from, to)
}

// BenchmarkEnrichDNSNames is BenchmarkEnrich with dns_names on, peers that are neither pods
// nor Services (every client connect and close is looked up) and a table of 10k names that
// holds none of them: what the lookups add per event.
func BenchmarkEnrichDNSNames(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			cfg := NewDefaultConfig()
			var names serverNames
			if on {
				t := dnsnames.NewTable(1 << 16)
				for i := range 10000 {
					t.Add(uint32(i), netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), "name.example", 0, 3600)
				}
				names = &lockedTable{t: t}
			}
			en := newEnricher(newResources(cfg, attribution.None{}), attribution.None{}, names)
			events := enrichAll(newResources(cfg, attribution.None{}), shortConnections(benchBatch))
			perEvent(b, events, en.enrich)
		})
	}
}

// The reader decodes each batch into the slots of the last one: an event without a
// translation must not keep the backend pod of the event its slot held before (checker:
// refused connects to a Service without endpoints, and connects to non-pod peers, were named
// after a backend pod of an earlier batch).
func TestEnrichForgetsTheSlotsEarlierBackend(t *testing.T) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, fixedPeers{}), fixedPeers{}, nil)
	batch := []enrichedEvent{{Event: event.Event{
		Type: event.Connect, Role: event.Client,
		Peer:    netip.MustParseAddrPort("10.96.0.10:80"),
		Backend: netip.MustParseAddrPort("10.1.0.9:8080"),
	}}}
	en.enrich(batch)
	assert.Equal(t, "web-0", withBackend(batch[0].peer, batch[0].backend).PodName)

	batch[0].Event = event.Event{Type: event.Connect, Role: event.Client, Peer: netip.MustParseAddrPort("10.96.0.11:80"), Errno: 111}
	en.enrich(batch)
	named := withBackend(batch[0].peer, batch[0].backend)
	assert.Equal(t, attribution.Peer{ServiceName: "empty", Namespace: "shop", NoReadyEndpoints: true}, named)
}

// A failed connect that was translated to a backend reached one (a terminating pod refused
// it): never "no ready endpoints", whatever the Service's slices say by then. Found by an
// independent check.
func TestEnrichNoReadyEndpointsOnlyUntranslated(t *testing.T) {
	cfg := NewDefaultConfig()
	en := newEnricher(newResources(cfg, fixedPeers{}), fixedPeers{}, nil)
	refused := event.Event{Type: event.Connect, Role: event.Client, Peer: netip.MustParseAddrPort("10.96.0.11:80"), Errno: 111}
	translated := refused
	translated.Backend = netip.MustParseAddrPort("10.1.0.9:8080")
	balanced := refused
	balanced.Peer, balanced.Dialled = netip.MustParseAddrPort("10.1.0.9:8080"), refused.Peer
	batch := []enrichedEvent{{Event: refused}, {Event: translated}, {Event: balanced}}
	en.enrich(batch)
	assert.True(t, batch[0].peer.NoReadyEndpoints, "rejected before any backend")
	assert.False(t, batch[1].peer.NoReadyEndpoints, "DNAT'd to web-0, which refused")
	assert.Equal(t, "web-0", withBackend(batch[1].peer, batch[1].backend).PodName)
	assert.False(t, batch[2].peer.NoReadyEndpoints, "balanced to web-0 at connect()")
}

// A connection found at Start is named, at its close, as its found record was: by who held the
// peer's address when the scan found it, not by a pod given the address since. Found by an
// independent check (the close named the new pod).
func TestEnrichNamesAFoundConnectionsCloseWhenFound(t *testing.T) {
	cfg := NewDefaultConfig()
	attr := &handedOver{}
	en := newEnricher(newResources(cfg, attr), attr, nil)
	peer := netip.MustParseAddrPort("10.1.0.9:43000")
	batch := []enrichedEvent{{Event: event.Event{Type: event.Found, Found: true, RoleGuessed: true, Role: event.Server, Time: uint64(handOverAt - 1000), Peer: peer}}}
	en.enrich(batch)
	assert.Equal(t, "web-0", batch[0].peer.PodName)
	batch = []enrichedEvent{
		{Event: event.Event{Type: event.Close, Found: true, RoleGuessed: true, Role: event.Server, Time: uint64(handOverAt + 1000), Peer: peer}},
		{Event: event.Event{Type: event.Close, Role: event.Server, Time: uint64(handOverAt + 1000), Start: uint64(handOverAt + 500), Peer: peer}},
	}
	en.enrich(batch)
	assert.Equal(t, "web-0", batch[0].peer.PodName, "as found")
	assert.Equal(t, "web-1", batch[1].peer.PodName, "one opened after the hand-over: its new owner")
}

// A drained aggregate's peer is its address's holder now, or, when that names nothing, the
// latest named holder since the last drain: a client pod deleted in the interval, or a Job's
// that came and went in it, names the series of its connections. Found by an independent
// check (their servers' series were unnamed).
func TestEnrichNamesADrainedPeerByItsHolderDuringTheInterval(t *testing.T) {
	attr := holders{
		{span: attribution.Span{From: 1000, To: 5000}, peer: attribution.Peer{PodName: "web-0"}},
		{span: attribution.Span{From: 5000, To: 6000}},
		{span: attribution.Span{From: 6000, To: 7000}, peer: attribution.Peer{PodName: "job-x"}},
		{span: attribution.Span{From: 7000, To: attribution.Always.To}},
	}
	addr := netip.MustParseAddr("10.1.0.9")
	during := func(since, now int64) string {
		en := newEnricher(newResources(NewDefaultConfig(), attr), attr, nil)
		return en.peerDuring(addr, since, now).PodName
	}
	assert.Equal(t, "job-x", during(4000, 8000), "the latest named holder in the interval")
	assert.Equal(t, "web-0", during(0, 5500), "deleted in the interval")
	assert.Empty(t, during(7500, 8000), "gone before the interval")
	assert.Equal(t, "job-x", during(6500, 6800), "the holder now")
}

// holders is an address's holders over time.
type holders []struct {
	span attribution.Span
	peer attribution.Peer
}

func (h holders) Peer(_ netip.Addr, at int64) (attribution.Peer, attribution.Span) {
	for _, x := range h {
		if x.span.Holds(at) {
			return x.peer, x.span
		}
	}
	return attribution.Peer{}, attribution.Span{From: attribution.Always.From, To: h[0].span.From}
}

func (holders) Local(uint32, uint64) attribution.Local                 { return attribution.Local{} }
func (holders) NoReadyEndpoints(attribution.Peer, netip.AddrPort) bool { return false }
func (holders) NodeAddrs() []netip.Addr                                { return nil }

// A close is named as its connect was, however many answers came for its address since: the
// table keeps four per address, and a pod asking again for the same name after each TTL (or
// alternating two names of one CDN address) made them within minutes, after which the close of
// a long-lived connection was named nothing (found by an independent check).
func TestEnrichNamesACloseAsItsConnectWas(t *testing.T) {
	cfg := NewDefaultConfig()
	table := dnsnames.NewTable(1 << 10)
	names := &lockedTable{t: table}
	en := newEnricher(newResources(cfg, attribution.None{}), attribution.None{}, names)
	const s = int64(1e9)
	db := netip.MustParseAddr("192.0.2.10")
	local, peer := netip.MustParseAddrPort("10.1.0.5:40000"), netip.AddrPortFrom(db, 5432)
	table.Add(7, db, "db.example", 0, 30)
	batch := []enrichedEvent{{Event: event.Event{Type: event.Connect, Role: event.Client, NetnsIno: 7, Time: uint64(s), Start: uint64(s), BootStart: uint64(s), Local: local, Peer: peer}}}
	en.enrich(batch)
	require.Equal(t, "db.example", batch[0].serverName)
	for i := range int64(5) { // asked again after each TTL, another name between
		table.Add(7, db, "db.example", (31+60*i)*s, 30)
		table.Add(7, db, "replica.example", (45+60*i)*s, 10)
	}
	closing := func() []enrichedEvent {
		return []enrichedEvent{{Event: event.Event{Type: event.Close, Role: event.Client, NetnsIno: 7, Time: uint64(400 * s), Start: uint64(s), BootStart: uint64(s), Local: local, Peer: peer}}}
	}
	batch = closing()
	en.enrich(batch)
	assert.Equal(t, "db.example", batch[0].serverName, "the close, as its connect was")
	assert.Empty(t, en.connected.byConn, "forgotten at the close")
	batch = closing()
	en.enrich(batch)
	assert.Empty(t, batch[0].serverName, "a close whose connect was not read: named by the table, which no longer has the name")

	// A connect read after its close (per-CPU rings): its entry waits to be pushed out, and a
	// later connection on the same four-tuple, its connect unnamed, is not named by it.
	early := func(typ event.Type, start int64) []enrichedEvent {
		return []enrichedEvent{{Event: event.Event{Type: typ, Role: event.Client, NetnsIno: 7, Time: uint64(start + s), Start: uint64(start), BootStart: uint64(start), Local: local, Peer: peer}}}
	}
	table.Add(7, db, "db.example", 500*s, 30)
	en.enrich(early(event.Close, 501*s))
	en.enrich(early(event.Connect, 501*s))
	require.Len(t, en.connected.byConn, 1)
	batch = early(event.Connect, 600*s) // the name expired: unnamed
	en.enrich(batch)
	require.Empty(t, batch[0].serverName)
	batch = early(event.Close, 600*s)
	en.enrich(batch)
	assert.Empty(t, batch[0].serverName, "not named by an earlier connection's connect")

	for i := range maxConnectNames + 10 { // bounded: the oldest go first
		l := netip.AddrPortFrom(local.Addr(), uint16(1000+i%60000))
		l = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 16), byte(i >> 8)}), l.Port())
		en.enrich([]enrichedEvent{{Event: event.Event{Type: event.Connect, Role: event.Client, NetnsIno: 7, Time: uint64(510 * s), Start: uint64(510 * s), BootStart: uint64(510 * s), Local: l, Peer: peer}}})
	}
	assert.Len(t, en.connected.byConn, maxConnectNames, "bounded")
}

// The memo is bounded by the connections open at once, not by the connects made: one
// long-lived connection, the only one open, was pushed out by 16,384 short ones that came and
// went (a node making 100 named connects/s: under 3 minutes), and its close named by the table
// again, which no longer had its name (found by an independent check).
func TestTheConnectNamesMemoKeepsTheOnlyOpenConnection(t *testing.T) {
	cfg := NewDefaultConfig()
	table := dnsnames.NewTable(1 << 10)
	names := &lockedTable{t: table}
	en := newEnricher(newResources(cfg, attribution.None{}), attribution.None{}, names)
	const s = int64(1e9)
	db, api := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.20")
	table.Add(7, db, "db.example", 0, 30)
	table.Add(7, api, "api.example", 0, 1<<20)
	ev := func(typ event.Type, local netip.AddrPort, peer netip.Addr, start, at int64) []enrichedEvent {
		return []enrichedEvent{{Event: event.Event{
			Type: typ, Role: event.Client, NetnsIno: 7, Time: uint64(at), Start: uint64(start), BootStart: uint64(start),
			Local: local, Peer: netip.AddrPortFrom(peer, 443),
		}}}
	}
	long := netip.MustParseAddrPort("10.1.0.5:40000")
	b := ev(event.Connect, long, db, 1*s, 1*s)
	en.enrich(b)
	connectName := b[0].serverName
	for i := range maxConnectNames {
		l := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 50000)
		en.enrich(ev(event.Connect, l, api, 2*s, 2*s))
		en.enrich(ev(event.Close, l, api, 2*s, 3*s))
	}
	for i := range int64(4) { // four newer names for db's address: the table's four
		table.Add(7, db, "replica.example", (100+i*60)*s, 30)
		table.Add(7, db, "db2.example", (130+i*60)*s, 30)
	}
	assert.Len(t, en.connected.byConn, 1, "the one open connection")
	assert.LessOrEqual(t, len(en.connected.order), 2*maxConnectNames+1, "closed entries compacted")
	b = ev(event.Close, long, db, 1*s, 500*s)
	en.enrich(b)
	require.Equal(t, "db.example", connectName)
	assert.Equal(t, connectName, b[0].serverName, "the only open connection's close, as its connect")
}
