// Package event turns raw ring-buffer records into typed connection events. It is pure Go and
// runs anywhere: the kernel's struct layout comes from the bpf2go-generated type.
package event // import "github.com/podnet/podnet/receiver/internal/event"

import (
	"net/netip"

	"github.com/podnet/podnet/bpf"
)

// Type is what happened to the connection.
type Type uint8

const (
	Connect = Type(bpf.PodnetEventTypeEVENT_CONNECT)
	Accept  = Type(bpf.PodnetEventTypeEVENT_ACCEPT)
	Close   = Type(bpf.PodnetEventTypeEVENT_CLOSE)
	Found   = Type(bpf.PodnetEventTypeEVENT_FOUND)
)

// Name is the log record EventName: part of podnet's contract with users.
func (t Type) Name() string {
	switch t {
	case Connect:
		return "podnet.tcp.connect"
	case Accept:
		return "podnet.tcp.accept"
	case Close:
		return "podnet.tcp.close"
	case Found:
		return "podnet.tcp.connection.found"
	}
	return "podnet.tcp.unknown"
}

// Role is which end of the connection the local socket is.
type Role uint8

const (
	Client = Role(bpf.PodnetRoleROLE_CLIENT)
	Server = Role(bpf.PodnetRoleROLE_SERVER)
)

func (r Role) String() string {
	if r == Server {
		return "server"
	}
	return "client"
}

// CloseReason is how an established connection ended (bpf/close_reason.h close_reason_of).
type CloseReason uint8

const (
	CloseNormal        = CloseReason(bpf.PodnetCloseReasonCLOSE_NORMAL)
	CloseResetReceived = CloseReason(bpf.PodnetCloseReasonCLOSE_RESET_RECEIVED)
	CloseResetSent     = CloseReason(bpf.PodnetCloseReasonCLOSE_RESET_SENT)
	CloseTimeout       = CloseReason(bpf.PodnetCloseReasonCLOSE_TIMEOUT)
	// CloseReasons bounds the values: arrays indexed by reason have this length.
	CloseReasons = int(bpf.PodnetCloseReasonCLOSE_REASON_MAX)
)

// String is the podnet.tcp.close.reason value: part of podnet's contract with users.
func (r CloseReason) String() string {
	switch r {
	case CloseNormal:
		return "normal"
	case CloseResetReceived:
		return "reset_received"
	case CloseResetSent:
		return "reset_sent"
	case CloseTimeout:
		return "timeout"
	}
	return "unknown"
}

// Event is one decoded kernel event. Times are Unix nanoseconds.
type Event struct {
	Type  Type
	Role  Role
	Time  uint64
	Start uint64 // when the connection was established (a failed connect: when its SYN was sent); 0 = unknown
	// BootStart is an established connection's start as the kernel's boot clock read it, on its
	// connect (its time) and its close alike: what matches them (Start is converted with the
	// offset of the poll each was read in, which moves from poll to poll); 0 = unknown.
	BootStart uint64
	// Local and Peer are unmapped: IPv4-mapped IPv6 addresses are plain IPv4.
	Local, Peer netip.AddrPort
	NetnsIno    uint32
	CgroupID    uint64
	PID         uint32   // 0 = no process context known
	Comm        [16]byte // NUL-padded task comm; empty when PID is 0
	Errno       int32    // connect: why it failed; 0 = established
	// Close and found: totals over the connection's life.
	BytesSent, BytesReceived uint64
	Retransmits              uint32
	SRTTMicros               uint32 // close only
	// Close only: the part of the totals the periodic reads of open connections already
	// counted (and, for a found connection, its totals when found).
	CountedBytesSent, CountedBytesReceived uint64
	CountedRetransmits                     uint32
	// Found is set on a connection that predates podnet (its found event and its close): its
	// open was not seen, so its start is unknown and RoleGuessed is set too.
	Found       bool
	RoleGuessed bool
	// BytesUnknown: a found connection whose byte counts nobody read (found in /proc, where the
	// kernel refused the iterators): its record leaves them out rather than say 0.
	BytesUnknown bool
	// OpenUnseen is set on the accept of a connection established before podnet loaded (it
	// waited in its listener's accept queue): like a found one, not a connection opened under
	// podnet, so not counted in podnet.tcp.connections.
	OpenUnseen bool
	// HandshakeMicros, on an established connect and on accept: how long the handshake took
	// (bpf/handshake.h handshake_end); 0 = unknown.
	HandshakeMicros uint32
	// SynRetransmits, on connect and accept: SYNs (client) or SYN-ACKs (server) retransmitted
	// before the handshake ended.
	SynRetransmits uint32
	// CloseReason, on close: how the connection ended.
	CloseReason CloseReason
	// Backend, on a client's connect and close: where the node's NAT translated the destination
	// (a Service's backend); invalid when it was not translated or nobody looked.
	Backend netip.AddrPort
	// Dialled, where socket-level load balancing changed connect()'s destination before TCP saw
	// it: what the caller dialled (the Service). Peer and Backend are then the backend.
	Dialled netip.AddrPort
	// SampleOneIn, with logs sampling on: this connection's records are 1 in this many (1: an
	// abnormal connection, all of which are kept); 0 with sampling off.
	SampleOneIn uint32
}

// Failed reports whether a connect did not establish.
func (e *Event) Failed() bool { return e.Errno != 0 }

// ServerPort is the port of the server end: the peer's for a client, the local one for a server.
func (e *Event) ServerPort() uint16 {
	if e.Role == Server {
		return e.Local.Port()
	}
	return e.Peer.Port()
}

// Duration is how long the connection lived, in ns; false when its start is unknown (opened
// before podnet loaded).
func (e *Event) Duration() (uint64, bool) {
	if e.Start == 0 || e.Time < e.Start {
		return 0, false
	}
	return e.Time - e.Start, true
}

// Remainder is what a close adds to the byte and retransmit sums: its totals less what the
// periodic reads of the open connection already counted.
func (e *Event) Remainder() (sent, received, retransmits uint64) {
	return rest(e.BytesSent, e.CountedBytesSent), rest(e.BytesReceived, e.CountedBytesReceived),
		rest(uint64(e.Retransmits), uint64(e.CountedRetransmits))
}

// rest never wraps: the kernel counts at most the total, and a bug that counted more must not
// add 2^64 to a sum.
func rest(total, counted uint64) uint64 {
	if counted > total {
		return 0
	}
	return total - counted
}

// IPv6 reports whether the connection is IPv6 (after unmapping IPv4-mapped addresses).
func (e *Event) IPv6() bool { return e.Peer.Addr().Is6() }
