//go:build linux

package dnsnames

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// otelcol_podnet_dns_responses_dropped says podnet lost a response. A resolver's root priming
// answer (`. NS`, which names no host) and a response longer than podnet's copy, whose answers
// before the cut were used, were counted there (found by an independent check); a malformed
// one still is.
func TestWellFormedResponsesAreNotCountedDropped(t *testing.T) {
	n := &Names{table: NewTable(1024), clock: event.NewClock()}
	record := func(msg []byte) []byte {
		var r bpf.DnsResponse
		r.NetnsIno, r.Transport, r.Length = 7, 17, uint16(len(msg))
		r.Captured = uint16(min(len(msg), 1232))
		raw := make([]byte, headerSize+int(r.Captured))
		copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&r)), headerSize))
		copy(raw[headerSize:], msg)
		return raw
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, Response: true})
	require.NoError(t, b.StartQuestions())
	require.NoError(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("."), Type: dnsmessage.TypeNS, Class: dnsmessage.ClassINET}))
	require.NoError(t, b.StartAnswers())
	require.NoError(t, b.NSResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("."), Class: dnsmessage.ClassINET, TTL: 518400},
		dnsmessage.NSResource{NS: dnsmessage.MustNewName("a.root-servers.net.")}))
	root, err := b.Finish()
	require.NoError(t, err)
	n.add(record(root))

	var answers []rr
	for i := range 90 {
		answers = append(answers, rr{name: "many.example.", addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), ttl: 60})
	}
	many := response(t, "many.example.", dnsmessage.RCodeSuccess, answers...)
	require.Greater(t, len(many), 1232)
	n.add(record(many))
	assert.Equal(t, "many.example", n.table.Lookup(7, netip.MustParseAddr("192.0.2.1"), int64(n.clock.UnixNano(0))+1), "answers before the copy's end are used")
	assert.Zero(t, n.stats.Malformed, "neither is a response podnet could not use")

	n.add(record(many[:20])) // a header and half a question: malformed
	assert.Equal(t, uint64(1), n.stats.Malformed)
}

// A response over TCP longer than its segment (its length prefix says so) is read as far as the
// segment goes, as one longer than the copy is: its cut is no malformed response, and was
// counted dropped though its answers were used.
func TestAResponseLongerThanItsSegmentIsNotCountedDropped(t *testing.T) {
	n := &Names{table: NewTable(1024), clock: event.NewClock()}
	var answers []rr
	for i := range 150 {
		answers = append(answers, rr{name: "many.example.", addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), ttl: 60})
	}
	many := response(t, "many.example.", dnsmessage.RCodeSuccess, answers...)
	segment := append(binary.BigEndian.AppendUint16(nil, uint16(len(many))), many...)[:1000] // cut inside a record
	var r bpf.DnsResponse
	r.NetnsIno, r.Transport, r.Length, r.Captured = 7, ipprotoTCP, uint16(len(segment)), uint16(len(segment))
	raw := make([]byte, headerSize+len(segment))
	copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&r)), headerSize))
	copy(raw[headerSize:], segment)
	n.add(raw)
	assert.Equal(t, "many.example", n.table.Lookup(7, netip.MustParseAddr("192.0.2.1"), int64(n.clock.UnixNano(0))+1), "answers before the segment's end are used")
	assert.Zero(t, n.stats.Malformed, "a response cut by its segment is no malformed one")
}
