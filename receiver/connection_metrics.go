//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// seriesKey is everything a connection metric data point is split by.
type seriesKey struct {
	res        seriesOwner
	role       event.Role
	ipv6       bool
	peer       netip.Addr
	serverPort uint16
	errno      int32 // connects only: 0 = established
	peerID     attribution.Peer
	// backend, with service_backends.metric_attribute: where a client's connection to a Service
	// was translated to, and its pod.
	backend   netip.Addr
	backendID attribution.Peer
	// serverName, with dns_names.metric_attribute: the DNS name a client's pod resolved to the
	// peer (server.address), or dnsOtherName beyond dns_names.max_metric_names.
	serverName string
	// overflow marks the one series new series fold into once max_metric_series are live
	// (overflowKey).
	overflow bool
}

// series holds the cumulative values of one key since start, and its open connections.
type series struct {
	start, updated pcommon.Timestamp
	local          *localEnd // as named by the series' latest event
	connections    int64
	synRetransmits int64 // of the opens: SYN or SYN-ACK retransmissions
	closed         int64
	closedBy       [event.CloseReasons]int64 // closed, by event.CloseReason
	handshakes     handshakes
	bytesSent      int64
	bytesReceived  int64
	retransmits    int64
	durationNs     int64 // summed in ns, as the kernel does, so both paths agree exactly
	// active is the open connections at the last complete drain (a value, not a sum);
	// drained collects the current drain's, until settleActive.
	active, drained int64
	// retired: idle past expiry, no longer emitted (connectionMetrics.retired).
	retired bool
	// The service graph's edge (service_graph.go), named for edgeLocal and a peer that was a
	// node's address or not (edgeNode: learned once the pods are listed); edgeAt is it in the
	// graph, kept so an open costs no lookup by name.
	edge      edgeKey
	hasEdge   bool
	edgeLocal *localEnd
	edgeNode  bool
	edgeAt    *edge
}

// connectionMetrics aggregates attributed events into cumulative sums, bounded by
// max_metric_series: beyond it, new series fold into one overflow series (metric_overflow.go),
// so sums stay exact. Series idle for longer than metric_series_idle_expiry are forgotten; one
// that comes back starts again with a new start time, which is how OTLP marks a cumulative
// reset. It is not safe for concurrent use: its owner serialises add and emit.
type connectionMetrics struct {
	mb     *metadata.MetricsBuilder
	names  stringCache
	max    int
	expiry time.Duration
	series map[seriesKey]*series
	// retired counts the series of m.series that went idle past expiry: not emitted, not live,
	// kept (at most max of them) so that one that comes back continues its cumulative values
	// from its start time instead of starting over: a backend that ignores start times
	// (Prometheus) would not see that reset when the new value is the higher.
	retired int
	// listens: podnet.tcp.listen.overflows, set by each listener scan (listenOverflows).
	listens         map[ownedListen]*listenSeries
	retiredListens  int // of listens, retired (at most max kept: retireIdleListens)
	listenOverflows bool
	// listenPort: listen.overflows keeps server.port (its only attribute, which may be dropped).
	listenPort bool
	// countsActive is false when the kernel cannot read open connections (no BPF
	// iterators): active is then unknown, not 0, and not reported.
	countsActive bool
	// backends splits client series by backend (service_backends.metric_attribute).
	backends bool
	// serverNames splits client series by DNS name (dns_names.metric_attribute), bounded.
	serverNames *metricNames
	// handshakeHistogram emits podnet.tcp.handshake.duration (handshake_histogram).
	handshakeHistogram bool
	version            string
	// owners tells apart the workloads that had one local end's identity (series_owners.go).
	owners *seriesOwners
	// node is the overflow series' local end: the node, no pod (the folded series had many).
	node  *localEnd
	graph serviceGraph
	// keep: the attributes the series keep (metrics.<name>.attributes); a key is projected
	// on them before its series is found, the service graph still sees the whole key.
	keep seriesAttrs
}

func newConnectionMetrics(cfg *Config, set receiver.Settings) *connectionMetrics {
	keep, _ := seriesAttributesOf(cfg.Metrics) // Validate refused the settings that disagree
	mbc := metadata.MetricsBuilderConfig{Metrics: keep.withoutDropped(cfg.Metrics), ResourceAttributes: cfg.ResourceAttributes}
	if d := keep.dropped(); len(d) > 0 {
		set.Logger.Info("podnet: metrics.<name>.attributes drops these from every connection metric (they share their series)",
			zap.Strings("dropped", d))
	}
	return &connectionMetrics{
		keep:         keep,
		mb:           metadata.NewMetricsBuilder(mbc, set),
		names:        newStringCache(),
		max:          cfg.MaxMetricSeries,
		expiry:       cfg.MetricSeriesIdleExpiry,
		series:       map[seriesKey]*series{},
		listens:      map[ownedListen]*listenSeries{},
		owners:       newSeriesOwners(cfg.ResourceAttributes),
		countsActive: true,

		listenOverflows: cfg.Metrics.PodnetTCPListenOverflows.Enabled,
		listenPort:      slices.Contains(cfg.Metrics.PodnetTCPListenOverflows.EnabledAttributes, metadata.PodnetTCPListenOverflowsMetricAttributeKeyServerPort),
		backends:        cfg.ServiceBackends.MetricAttribute,
		serverNames:     newMetricNames(cfg, keep.port),

		handshakeHistogram: cfg.HandshakeHistogram,
		version:            set.BuildInfo.Version,
		node:               nodeEnd(cfg),
		graph:              newServiceGraph(cfg, keep == keepEvery),
	}
}

// add counts a batch of events and returns how many found no room for a new series and were
// folded into the overflow series. A close
// adds only what the periodic reads of the open connection did not count (the drains add
// that); a found connection adds nothing, nor the accept of one that waited in its listener's
// queue since before podnet loaded: neither was opened under podnet, and the drains count them
// active (the kernel's aggregates count neither either).
func (m *connectionMetrics) add(events []enrichedEvent) (folded int64) {
	now := pcommon.NewTimestampFromTime(time.Now())
	for i := range events {
		e := &events[i]
		if e.Type == event.Found || e.OpenUnseen {
			continue
		}
		k := seriesKey{
			res:        m.owners.of(e.local),
			role:       e.Role,
			ipv6:       e.IPv6(),
			peer:       e.Peer.Addr(),
			serverPort: e.ServerPort(),
			peerID:     e.peer,
		}
		if e.Type == event.Connect {
			k.errno = e.Errno
		}
		if m.backends && e.Backend.IsValid() {
			k.backend, k.backendID = e.Backend.Addr(), e.backend
		}
		if e.Role == event.Client {
			k.serverName = m.serverNames.ofEvent(e.local.key, k.peer, k.serverPort, e.serverName, now)
		}
		s, overflowed := m.seriesOf(&k, e.local, now, now)
		if overflowed {
			folded++
		}
		switch e.Type {
		case event.Connect, event.Accept:
			m.graph.count(&k, e.local, s, overflowed, &m.names, 1, b2i(e.Failed()), now)
			s.connections++
			s.synRetransmits += int64(e.SynRetransmits)
			addHandshake(s, e)
		case event.Close:
			s.closed++
			s.closedBy[e.CloseReason]++ // decoding checked the range
			sent, received, retransmits := e.Remainder()
			s.bytesSent += int64(sent)
			s.bytesReceived += int64(received)
			s.retransmits += int64(retransmits)
			if d, ok := e.Duration(); ok {
				s.durationNs += int64(d)
			}
		}
	}
	return folded
}

// addAggregate adds one drained aggregate (what a key counted since the last drain, and its
// open connections now), its peer address decoded and its ends attributed, and reports
// whether it was folded into the overflow series for want of room. Several keys can make one series (an IPv4-mapped peer and the same
// IPv4 peer), so their open connections add up.
func (m *connectionMetrics) addAggregate(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue, peer netip.Addr, local *localEnd, peerID attribution.Peer,
	backend netip.Addr, backendID attribution.Peer, serverName string, since, now pcommon.Timestamp,
) bool {
	key := seriesKey{
		res:        m.owners.of(local),
		role:       event.Role(k.Role),
		ipv6:       peer.Is6(),
		peer:       peer,
		serverPort: k.ServerPort,
		errno:      k.Error,
		peerID:     peerID,
	}
	if m.backends && backend.IsValid() {
		key.backend, key.backendID = backend, backendID
	}
	if key.role == event.Client {
		key.serverName = m.serverNames.ofDrain(local.key, peer, key.serverPort, serverName, now)
	}
	s, overflowed := m.seriesOf(&key, local, since, now)
	failed := int64(0)
	if key.errno != 0 {
		failed = int64(v.Connections)
	}
	m.graph.count(&key, local, s, overflowed, &m.names, int64(v.Connections), failed, now)
	addValue(s, v)
	return overflowed
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// addValue adds a drained aggregate's counts to a series.
func addValue(s *series, v *bpf.PodnetAggValue) {
	s.connections += int64(v.Connections)
	s.synRetransmits += int64(v.SynRetransmits)
	s.handshakes.addAggregate(v)
	s.closed += int64(v.Closed)
	for r, n := range v.ClosedBy {
		s.closedBy[r] += int64(n)
	}
	s.bytesSent += int64(v.BytesSent)
	s.bytesReceived += int64(v.BytesReceived)
	s.retransmits += int64(v.Retransmits)
	s.durationNs += int64(v.DurationNs)
	s.drained += int64(v.Active)
}

// seriesOf is get for k less the attributes the series drop, and less what is on no metric
// point: what only names the service graph's edge (a peer's workload, and whether it is a node's
// address, which the graph reads from the whole key), a peer pod's UID and a Service's want of
// ready endpoints (log attributes). Either would make a second series with the same attributes
// (a peer found to be a node's later; a peer pod recreated under its name at its address). With every attribute kept (the default) it copies nothing more (it
// runs per event with events aggregation).
func (m *connectionMetrics) seriesOf(k *seriesKey, local *localEnd, start, now pcommon.Timestamp) (*series, bool) {
	key := *k
	key.peerID.Workload, key.peerID.Node, key.peerID.PodUID, key.peerID.NoReadyEndpoints = "", false, "", false
	key.backendID.Workload, key.backendID.Node, key.backendID.PodUID, key.backendID.NoReadyEndpoints = "", false, "", false
	if m.keep != keepEvery {
		key = m.keep.project(key)
	}
	return m.get(key, local, start, now)
}

// get returns the series of k, creating it, starting at start, if there is room; when
// max_metric_series are live, the overflow series (overflowed true).
func (m *connectionMetrics) get(k seriesKey, local *localEnd, start, now pcommon.Timestamp) (s *series, overflowed bool) {
	s = m.series[k]
	if s != nil && s.retired {
		if m.live() < m.max {
			m.revive(s)
		} else {
			s = nil
		}
	}
	if s == nil {
		if m.live() >= m.max {
			k, local, overflowed = overflowKey, m.node, true
			// Revived too when counted into (it was counted into and never emitted again:
			// found by an independent check, 540 connections in no metric).
			if s = m.series[k]; s != nil {
				m.revive(s)
			}
		}
		if s == nil {
			s = &series{start: start}
			m.series[k] = s
		}
	}
	s.updated, s.local = now, namedOver(s.local, local)
	return s, overflowed
}

// revive brings a retired series back: it continues from where it was, from its start time.
func (m *connectionMetrics) revive(s *series) {
	if s.retired {
		s.retired = false
		m.retired--
	}
}

// forgetRetired keeps the max most recently updated retired series and forgets the rest. The
// overflow series is neither counted nor forgotten: it is one more, always kept (counted, a
// retired overflow series made the max-th retired series start over when it came back: found
// by an independent check, 5 connections read as 3 from a new start).
func (m *connectionMetrics) forgetRetired() {
	retired := m.retired
	if s, ok := m.series[overflowKey]; ok && s.retired {
		retired--
	}
	if retired <= m.max {
		return
	}
	m.retired -= forgetOldest(m.series, m.max, func(k seriesKey, s *series) (pcommon.Timestamp, bool) {
		return s.updated, s.retired && !k.overflow
	})
}

// forgetOldest deletes from m the entries retiredAt says are retired but the keep most recently
// updated of them, and returns how many it deleted.
func forgetOldest[K comparable, V any](m map[K]V, keep int, retiredAt func(K, V) (pcommon.Timestamp, bool)) int {
	type retired struct {
		k  K
		at pcommon.Timestamp
	}
	var rs []retired
	for k, v := range m {
		if at, ok := retiredAt(k, v); ok {
			rs = append(rs, retired{k, at})
		}
	}
	if len(rs) <= keep {
		return 0
	}
	slices.SortFunc(rs, func(a, b retired) int { return cmp.Compare(a.at, b.at) })
	for _, r := range rs[:len(rs)-keep] {
		delete(m, r.k)
	}
	return len(rs) - keep
}

// emit returns every live series' cumulative values, one ResourceMetrics per local end (per
// workload that had it), named as the end's most recent event named it.
func (m *connectionMetrics) emit(now pcommon.Timestamp) pmetric.Metrics {
	byResource := map[seriesOwner][]seriesKey{}
	listensBy := map[seriesOwner][]ownedListen{}
	latest := latestNames{}
	inUse := map[seriesOwner]struct{}{}
	for k, s := range m.series {
		inUse[k.res] = struct{}{}
		if s.retired {
			continue
		}
		if s.active == 0 && now.AsTime().Sub(s.updated.AsTime()) > m.expiry {
			s.retired = true
			m.retired++
			continue
		}
		if k.overflow {
			continue // emitted on its own, after the rest
		}
		byResource[k.res] = append(byResource[k.res], k)
		latest.see(k.res, s.local, s.updated)
	}
	m.forgetRetired()
	m.serverNames.expire(now, m.expiry)
	m.retireIdleListens(now)
	for k, s := range m.listens {
		inUse[k.owner] = struct{}{} // a retired series' too: back, it is the same workload's
		if s.retired {
			continue
		}
		listensBy[k.owner] = append(listensBy[k.owner], k)
		latest.see(k.owner, s.local, s.updated)
	}
	m.owners.prune(inUse)
	md := pmetric.NewMetrics()
	emitted := make(map[seriesOwner]pmetric.ResourceMetrics, len(latest))
	for rk, l := range latest {
		keys := byResource[rk]
		for i, k := range keys {
			m.record(now, k, m.series[k])
			if (i+1)%emitChunk == 0 && i+1 < len(keys) {
				m.takeChunk(md, emitted, rk, l.local.res)
			}
		}
		m.recordListens(now, listensBy[rk])
		m.takeChunk(md, emitted, rk, l.local.res)
	}
	m.emitHandshakes(md, now, byResource, latest, emitted)
	// The overflow series, its handshakes and the service graph's edges are the node's: one
	// ResourceMetrics for all of them (each made its own, up to four with one Resource: valid
	// OTLP, but a backend keying on the Resource saw one node as several).
	m.emitOverflow(md, now, emitted)
	m.emitServiceGraph(md, now, emitted)
	return md
}

// emitChunk is how many series' points the generated builder holds at once. Each point it
// records is compared with every point its metric holds (the builder's merge of points whose
// dropped attributes made them equal), so one Resource's n series cost n² comparisons: an
// independent review measured 46 s per emission, under the metrics lock, for 10,000 series of
// one ingress pod. Taken out every emitChunk series (never inside one series' points, the only
// ones that may merge: close reasons dropped) and moved into the Resource's one
// ResourceMetrics, they cost n × emitChunk.
const emitChunk = 32

// takeChunk takes what the builder holds (one local end's series) into md, in rk's one
// ResourceMetrics (emitted), made for res at its first chunk.
func (m *connectionMetrics) takeChunk(md pmetric.Metrics, emitted map[seriesOwner]pmetric.ResourceMetrics, rk seriesOwner, res pcommon.Resource) {
	takeInto(md, emitted, rk, m.mb.Emit(metadata.WithResource(res)))
}

// takeInto moves from's metrics (of one Resource, rk's) into md, in rk's one ResourceMetrics.
func takeInto(md pmetric.Metrics, emitted map[seriesOwner]pmetric.ResourceMetrics, rk seriesOwner, from pmetric.Metrics) {
	rms := from.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ { // 0 or 1
		src := rms.At(i)
		dst, ok := emitted[rk]
		if !ok {
			dst = md.ResourceMetrics().AppendEmpty()
			src.MoveTo(dst)
			emitted[rk] = dst
			continue
		}
		mergeScopeMetrics(dst.ScopeMetrics().At(0), src.ScopeMetrics().At(0))
	}
}

// mergeScopeMetrics moves src's metrics into dst: the data points of a metric dst has too are
// appended to its own.
func mergeScopeMetrics(dst, src pmetric.ScopeMetrics) {
	byName := make(map[string]pmetric.Metric, dst.Metrics().Len())
	for _, d := range dst.Metrics().All() {
		byName[d.Name()] = d
	}
	for _, sm := range src.Metrics().All() {
		d, ok := byName[sm.Name()]
		switch {
		case !ok:
			sm.MoveTo(dst.Metrics().AppendEmpty())
		case sm.Type() == pmetric.MetricTypeSum:
			sm.Sum().DataPoints().MoveAndAppendTo(d.Sum().DataPoints())
		case sm.Type() == pmetric.MetricTypeGauge:
			sm.Gauge().DataPoints().MoveAndAppendTo(d.Gauge().DataPoints())
		case sm.Type() == pmetric.MetricTypeHistogram:
			sm.Histogram().DataPoints().MoveAndAppendTo(d.Histogram().DataPoints())
		}
	}
}

// latestNames is each local end as its most recently updated series named it.
type latestNames map[seriesOwner]namedAt

type namedAt struct {
	local *localEnd
	at    pcommon.Timestamp
}

func (l latestNames) see(rk seriesOwner, local *localEnd, at pcommon.Timestamp) {
	cur, ok := l[rk]
	switch {
	case !ok:
		l[rk] = namedAt{local, at}
	case at > cur.at:
		l[rk] = namedAt{namedOver(cur.local, local), at}
	default:
		l[rk] = namedAt{namedOver(local, cur.local), cur.at}
	}
}

func (m *connectionMetrics) record(now pcommon.Timestamp, k seriesKey, s *series) {
	// Each series carries its own start time: the builder stamps the one set here.
	m.mb.Reset(metadata.WithStartTime(startedBy(&s.start, now)))
	role := metadata.AttributePodnetConnectionRoleClient
	if k.role == event.Server {
		role = metadata.AttributePodnetConnectionRoleServer
	}
	netType := metadata.AttributeNetworkTypeIpv4
	if k.ipv6 {
		netType = metadata.AttributeNetworkTypeIpv6
	}
	peer := m.names.addr(k.peer)
	port := int64(k.serverPort)
	opts := peerOptions(withBackend(k.peerID, k.backendID))
	if k.backend.IsValid() {
		opts = append(opts, metadata.WithPodnetPeerBackendAddressMetricAttribute(m.names.addr(k.backend)))
	}
	if k.serverName != "" {
		opts = append(opts, metadata.WithServerAddressMetricAttribute(k.serverName))
	}
	if s.connections > 0 {
		connOpts := opts
		if k.errno != 0 {
			connOpts = append(connOpts[:len(connOpts):len(connOpts)], metadata.WithErrorTypeMetricAttribute(event.ErrorType(k.errno)))
		}
		m.mb.RecordPodnetTCPConnectionsDataPoint(now, s.connections, role, netType, peer, port, connOpts...)
		if s.synRetransmits > 0 {
			m.mb.RecordPodnetTCPSynRetransmitsDataPoint(now, s.synRetransmits, role, netType, peer, port, connOpts...)
		}
	}
	if k.errno != 0 {
		return // a failed connect: never established
	}
	if m.countsActive {
		// Every series, 0 included, so that a backend sees the count drop.
		m.mb.RecordPodnetTCPConnectionsActiveDataPoint(now, s.active, role, netType, peer, port, opts...)
	}
	if s.closed > 0 {
		for r, n := range s.closedBy {
			if r > 0 && n > 0 { // 0: no close has it (the kernel always decides one)
				m.mb.RecordPodnetTCPConnectionsClosedDataPoint(now, n, role, netType, peer, port, closeReasons[r], opts...)
			}
		}
		m.mb.RecordPodnetTCPConnectionDurationDataPoint(now, float64(s.durationNs)/1e9, role, netType, peer, port, opts...)
	}
	if s.closed > 0 || s.active > 0 || s.bytesSent > 0 || s.bytesReceived > 0 || s.retransmits > 0 {
		m.mb.RecordPodnetTCPBytesSentDataPoint(now, s.bytesSent, role, netType, peer, port, opts...)
		m.mb.RecordPodnetTCPBytesReceivedDataPoint(now, s.bytesReceived, role, netType, peer, port, opts...)
		m.mb.RecordPodnetTCPRetransmitsDataPoint(now, s.retransmits, role, netType, peer, port, opts...)
	}
}

// closeReasons maps event.CloseReason to its attribute value ([0]: decoding never lets one through).
var closeReasons = [event.CloseReasons]metadata.AttributePodnetTCPCloseReason{
	event.CloseNormal:        metadata.AttributePodnetTCPCloseReasonNormal,
	event.CloseResetReceived: metadata.AttributePodnetTCPCloseReasonResetReceived,
	event.CloseResetSent:     metadata.AttributePodnetTCPCloseReasonResetSent,
	event.CloseTimeout:       metadata.AttributePodnetTCPCloseReasonTimeout,
}

func peerOptions(p attribution.Peer) []metadata.MetricAttributeOption {
	var opts []metadata.MetricAttributeOption
	if p.Namespace != "" {
		opts = append(opts, metadata.WithPodnetPeerK8sNamespaceNameMetricAttribute(p.Namespace))
	}
	if p.PodName != "" {
		opts = append(opts, metadata.WithPodnetPeerK8sPodNameMetricAttribute(p.PodName))
	}
	if p.ServiceName != "" {
		opts = append(opts, metadata.WithPodnetPeerK8sServiceNameMetricAttribute(p.ServiceName))
	}
	return opts
}

// startedBy is a cumulative series' start time as a point at now carries it: never after now.
// A series the reader began (time.Now() at its first event) after the emitter took now (before
// it took the metrics lock; at Shutdown, the detach, before the ring's last events are read)
// starts at now, from then on, so that its start never moves (found by an independent review:
// points whose start came after their own time, which backends reject).
func startedBy(start *pcommon.Timestamp, now pcommon.Timestamp) pcommon.Timestamp {
	*start = min(*start, now)
	return *start
}
