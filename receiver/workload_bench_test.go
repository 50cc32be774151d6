package podnetreceiver

import (
	"net/netip"
	"testing"

	"github.com/podnet/podnet/receiver/internal/event"
)

// benchBatch is how many events one poll typically hands over at peak (~190k events/s at
// a 100 ms poll interval would be more; 1024 keeps per-batch costs visible, not hidden).
const benchBatch = 1024

// shortConnections is the event stream of short pod-to-pod connections as the kernel reports
// them: connect, accept, client close, server close per connection, from a handful of client
// pods to a few servers, every connection with a new ephemeral port. It is the workload the
// bench/ harness drives for real.
func shortConnections(n int) []event.Event {
	const clients, servers = 8, 4
	comm := func(s string) (c [16]byte) { copy(c[:], s); return c }
	events := make([]event.Event, 0, n)
	for i := 0; len(events) < n; i++ {
		c, s := i%clients, i%servers
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 1, byte(10 + c)}), uint16(32768+i%28000))
		server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 2, byte(10 + s)}), 8080)
		t := t0 + uint64(i)*20_000
		cliNs, srvNs := uint32(4026532100+c), uint32(4026532200+s)
		conn := []event.Event{
			{
				Type: event.Connect, Role: event.Client, Time: t, NetnsIno: cliNs, CgroupID: uint64(cliNs), PID: 1000, Comm: comm("loadgen"), Local: client, Peer: server,
				HandshakeMicros: 44,
			},
			{
				Type: event.Accept, Role: event.Server, Time: t + 5000, Start: t + 4000, NetnsIno: srvNs, CgroupID: uint64(srvNs), PID: 2000, Comm: comm("server"), Local: server, Peer: client,
				HandshakeMicros: 40,
			},
			{
				Type: event.Close, CloseReason: event.CloseNormal, Role: event.Client, Time: t + 9000, Start: t + 3000, NetnsIno: cliNs, CgroupID: uint64(cliNs), PID: 1000, Comm: comm("loadgen"), Local: client, Peer: server,
				BytesSent: 16, BytesReceived: 64, SRTTMicros: 30,
			},
			{
				Type: event.Close, CloseReason: event.CloseNormal, Role: event.Server, Time: t + 9500, Start: t + 4000, NetnsIno: srvNs, CgroupID: uint64(srvNs), Local: server, Peer: client,
				BytesSent: 64, BytesReceived: 16, SRTTMicros: 25,
			},
		}
		events = append(events, conn...)
	}
	return events[:n]
}

// perEvent runs fn over b.N events (a batch of benchBatch) in batches of benchBatch, so ns/op
// and allocs/op are per event while each call still sees a poll-sized batch.
func perEvent[T any](b *testing.B, events []T, fn func([]T)) {
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBatch, b.N-done)
		fn(events[:n])
		done += n
	}
}
