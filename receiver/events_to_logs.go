//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"bytes"
	"net/netip"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	conventions "go.opentelemetry.io/otel/semconv/v1.38.0"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/event"
)

// logsConverter turns a batch of events into one plog.Logs: a ResourceLogs per local end, a
// LogRecord per event, in kernel order within each resource.
type logsConverter struct {
	enabled [event.Found + 1]bool // by event.Type
	version string
	names   stringCache
	scopes  map[*localEnd]plog.LogRecordSlice
}

func newLogsConverter(cfg metadata.EventsConfig, version string) *logsConverter {
	c := &logsConverter{version: version, names: newStringCache(), scopes: map[*localEnd]plog.LogRecordSlice{}}
	c.enabled[event.Connect] = cfg.PodnetTCPConnect.Enabled
	c.enabled[event.Accept] = cfg.PodnetTCPAccept.Enabled
	c.enabled[event.Close] = cfg.PodnetTCPClose.Enabled
	c.enabled[event.Found] = cfg.PodnetTCPConnectionFound.Enabled
	return c
}

// convert returns the logs and how many records they hold. Events carry their attribution
// (enrichedEvent): a local end is one ResourceLogs.
func (c *logsConverter) convert(events []enrichedEvent, observed pcommon.Timestamp) (plog.Logs, int) {
	ld := plog.NewLogs()
	scopes := c.scopes
	defer clear(scopes)
	n := 0
	for i := range events {
		e := &events[i]
		if !c.enabled[e.Type] {
			continue
		}
		records, ok := scopes[e.local]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.SetSchemaUrl(conventions.SchemaURL)
			e.local.res.CopyTo(rl.Resource())
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName(metadata.ScopeName)
			sl.Scope().SetVersion(c.version)
			records = sl.LogRecords()
			scopes[e.local] = records
		}
		c.record(records.AppendEmpty(), e, observed)
		n++
	}
	return ld, n
}

// kept is how many records convert would make of events.
func (c *logsConverter) kept(events []enrichedEvent) int {
	n := 0
	for i := range events {
		if c.enabled[events[i].Type] {
			n++
		}
	}
	return n
}

func (c *logsConverter) record(lr plog.LogRecord, e *enrichedEvent, observed pcommon.Timestamp) {
	lr.SetEventName(e.Type.Name())
	lr.SetTimestamp(pcommon.Timestamp(e.Time))
	lr.SetObservedTimestamp(observed)
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetSeverityText("INFO")

	a := lr.Attributes()
	// Exactly the attributes this record gets: the backing array is the largest allocation
	// per record, and a fixed worst-case size wasted a third of it on most records.
	a.EnsureCapacity(attributeCount(e))
	a.PutStr("network.transport", "tcp")
	a.PutStr("network.type", networkType(e))
	// A connect that failed before its SYN has no local end but what the socket was bound to:
	// an unspecified address or port 0 is no address or port (semconv: "of the connection").
	if !e.Local.Addr().IsUnspecified() {
		a.PutStr("network.local.address", c.names.addr(e.Local.Addr()))
	}
	if e.Local.Port() != 0 {
		a.PutInt("network.local.port", int64(e.Local.Port()))
	}
	a.PutStr("network.peer.address", c.names.addr(e.Peer.Addr()))
	a.PutInt("network.peer.port", int64(e.Peer.Port()))
	a.PutStr("podnet.connection.role", e.Role.String())
	if e.RoleGuessed {
		a.PutBool("podnet.connection.role.guessed", true)
	}
	if e.SampleOneIn != 0 {
		a.PutInt("podnet.sampling.one_in", int64(e.SampleOneIn))
	}
	if e.PID != 0 {
		a.PutInt("process.pid", int64(e.PID))
		a.PutStr("process.executable.name", c.names.comm(e.Comm))
	}
	if e.Failed() {
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText("WARN")
		a.PutStr("error.type", event.ErrorType(e.Errno))
		if e.peer.NoReadyEndpoints {
			a.PutBool("podnet.peer.k8s.service.no_ready_endpoints", true)
		}
	}
	peer := withBackend(e.peer, e.backend)
	putPeer(a, &peer)
	if e.Backend.IsValid() {
		a.PutStr("podnet.peer.backend.address", c.names.addr(e.Backend.Addr()))
		a.PutInt("podnet.peer.backend.port", int64(e.Backend.Port()))
	}
	if e.serverName != "" {
		// With its port, as semantic conventions require of server.address (a client's peer).
		a.PutStr("server.address", e.serverName)
		a.PutInt("server.port", int64(e.ServerPort()))
	}
	if e.Type == event.Close {
		if d, ok := e.Duration(); ok {
			a.PutDouble("podnet.connection.duration", float64(d)/1e9)
		}
		a.PutInt("podnet.tcp.bytes_sent", int64(e.BytesSent))
		a.PutInt("podnet.tcp.bytes_received", int64(e.BytesReceived))
		if e.SRTTMicros != 0 { // 0: the kernel took no sample (timestamps off, a retransmitted handshake or a SYN cookie, no data since)
			a.PutDouble("podnet.tcp.rtt", float64(e.SRTTMicros)/1e6)
		}
		a.PutInt("podnet.tcp.retransmits", int64(e.Retransmits))
		a.PutStr("podnet.tcp.close.reason", e.CloseReason.String())
	}
	if e.SynRetransmits != 0 {
		a.PutInt("podnet.tcp.syn_retransmits", int64(e.SynRetransmits))
	}
	if e.HandshakeMicros != 0 {
		a.PutDouble("podnet.tcp.handshake.duration", float64(e.HandshakeMicros)/1e6)
	}
	if e.Type == event.Found && !e.BytesUnknown {
		a.PutInt("podnet.tcp.bytes_sent", int64(e.BytesSent))
		a.PutInt("podnet.tcp.bytes_received", int64(e.BytesReceived))
	}
}

// attributeCount is how many attributes record and putPeer set for e.
func attributeCount(ee *enrichedEvent) int {
	e := &ee.Event
	named := withBackend(ee.peer, ee.backend)
	p := &named
	n := 5 // transport, type, peer address and port, role
	if !e.Local.Addr().IsUnspecified() {
		n++
	}
	if e.Local.Port() != 0 {
		n++
	}
	if ee.serverName != "" {
		n += 2
	}
	if e.PID != 0 {
		n += 2
	}
	if e.Failed() {
		n++
		if p.NoReadyEndpoints {
			n++
		}
	}
	if e.Backend.IsValid() {
		n += 2
	}
	if e.RoleGuessed {
		n++
	}
	if e.SampleOneIn != 0 {
		n++
	}
	if e.SynRetransmits != 0 {
		n++
	}
	if e.HandshakeMicros != 0 {
		n++
	}
	switch e.Type {
	case event.Close:
		n += 4
		if _, ok := e.Duration(); ok {
			n++
		}
		if e.SRTTMicros != 0 {
			n++
		}
	case event.Found:
		if !e.BytesUnknown {
			n += 2
		}
	}
	if p.Namespace != "" {
		n++
	}
	if p.PodName != "" {
		n++
	}
	if p.PodUID != "" {
		n++
	}
	if p.ServiceName != "" {
		n++
	}
	return n
}

func putPeer(a pcommon.Map, p *attribution.Peer) {
	if p.Namespace != "" {
		a.PutStr("podnet.peer.k8s.namespace.name", p.Namespace)
	}
	if p.PodName != "" {
		a.PutStr("podnet.peer.k8s.pod.name", p.PodName)
	}
	// Unknown: an EndpointSlice's targetRef need not carry the pod's uid. Alone: a backend pod
	// in another namespace than its Service's (withBackend).
	if p.PodUID != "" {
		a.PutStr("podnet.peer.k8s.pod.uid", p.PodUID)
	}
	if p.ServiceName != "" {
		a.PutStr("podnet.peer.k8s.service.name", p.ServiceName)
	}
}

func networkType(e *enrichedEvent) string {
	if e.IPv6() {
		return "ipv6"
	}
	return "ipv4"
}

// stringCache keeps the strings of addresses and process names seen recently: formatting an
// address costs an allocation, and the same few peers recur in every batch.
type stringCache struct {
	addrs map[netip.Addr]string
	comms map[[16]byte]string
}

const maxCachedStrings = 4096

func newStringCache() stringCache {
	return stringCache{addrs: map[netip.Addr]string{}, comms: map[[16]byte]string{}}
}

func (s *stringCache) addr(a netip.Addr) string {
	if v, ok := s.addrs[a]; ok {
		return v
	}
	if len(s.addrs) >= maxCachedStrings {
		clear(s.addrs)
	}
	v := a.String()
	s.addrs[a] = v
	return v
}

func (s *stringCache) comm(c [16]byte) string {
	if v, ok := s.comms[c]; ok {
		return v
	}
	if len(s.comms) >= maxCachedStrings {
		clear(s.comms)
	}
	n := bytes.IndexByte(c[:], 0)
	if n < 0 {
		n = len(c)
	}
	// comm is bytes, not text: a multi-byte character cut at its 15th byte, or anything prctl
	// set. OTLP strings must be UTF-8 (a checking exporter refuses the whole batch).
	v := strings.ToValidUTF8(string(c[:n]), "\uFFFD")
	s.comms[c] = v
	return v
}
