package dnsnames

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

type rr struct {
	name, target string
	addr         string
	ttl          uint32
}

// response builds a DNS response to a question for qname with the given answers.
func response(t *testing.T, qname string, rcode dnsmessage.RCode, answers ...rr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0xbeef, Response: true, RCode: rcode})
	b.EnableCompression()
	require.NoError(t, b.StartQuestions())
	require.NoError(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(qname), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	require.NoError(t, b.StartAnswers())
	for _, a := range answers {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(a.name), Class: dnsmessage.ClassINET, TTL: a.ttl}
		switch {
		case a.target != "":
			require.NoError(t, b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(a.target)}))
		case netip.MustParseAddr(a.addr).Is4():
			require.NoError(t, b.AResource(h, dnsmessage.AResource{A: netip.MustParseAddr(a.addr).As4()}))
		default:
			require.NoError(t, b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(a.addr).As16()}))
		}
	}
	msg, err := b.Finish()
	require.NoError(t, err)
	return msg
}

func TestParseFollowsChainsToTheQueriedName(t *testing.T) {
	msg := response(t, "API.Example.com.", dnsmessage.RCodeSuccess,
		rr{name: "api.example.com.", target: "api.cdn.net.", ttl: 300},
		rr{name: "api.cdn.net.", target: "edge.cdn.net.", ttl: 30},
		rr{name: "edge.cdn.net.", addr: "192.0.2.1", ttl: 60},
		rr{name: "edge.cdn.net.", addr: "2001:db8::1", ttl: 20},
		rr{name: "unrelated.example.", addr: "192.0.2.99", ttl: 60}, // not on the chain: ignored
	)
	got, err := Parse(msg, false, nil)
	require.NoError(t, err)
	assert.Equal(t, []Answer{
		{Addr: netip.MustParseAddr("192.0.2.1"), Name: "api.example.com", TTL: 30},   // the chain's least TTL
		{Addr: netip.MustParseAddr("2001:db8::1"), Name: "api.example.com", TTL: 20}, // the record's own, lower
	}, got)
}

// RFC 2181 §8: a TTL with its high bit set is 0, a CNAME's too, which bounds its chain (found
// by an independent check: the chain took the address record's 300 s).
func TestParseReadsATTLWithItsHighBitAsZero(t *testing.T) {
	msg := response(t, "www.example.", dnsmessage.RCodeSuccess,
		rr{name: "www.example.", target: "edge.cdn.net.", ttl: 0x80000000},
		rr{name: "edge.cdn.net.", addr: "192.0.2.1", ttl: 300},
		rr{name: "odd.example.", addr: "192.0.2.2", ttl: 0xffffffff}, // not on the chain
	)
	got, err := Parse(msg, false, nil)
	require.NoError(t, err)
	assert.Equal(t, []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), Name: "www.example", TTL: 0}}, got)
	assert.Equal(t, uint32(0), ttlOf(0xffffffff))
	assert.Equal(t, uint32(0x7fffffff), ttlOf(0x7fffffff))
}

func TestParseRefusesWhatIsNotAnAnswer(t *testing.T) {
	_, err := Parse(response(t, "x.example.", dnsmessage.RCodeNameError), false, nil)
	assert.ErrorIs(t, err, errNotResponse, "NXDOMAIN names nothing")
	truncated := response(t, "a.example.", dnsmessage.RCodeSuccess, rr{name: "a.example.", addr: "192.0.2.1", ttl: 60})
	truncated[2] |= 0x02 // TC: the resolver asks again over TCP and uses that answer
	got, err := Parse(truncated, false, nil)
	assert.ErrorIs(t, err, errNotResponse, "a truncated answer names nothing")
	assert.Empty(t, got)
	loop := response(t, "a.example.", dnsmessage.RCodeSuccess,
		rr{name: "a.example.", target: "b.example.", ttl: 60}, rr{name: "b.example.", target: "a.example.", ttl: 60})
	update := response(t, "a.example.", dnsmessage.RCodeSuccess, rr{name: "a.example.", addr: "192.0.2.1", ttl: 60})
	update[2] |= 5 << 3 // opcode UPDATE: no answer to a query
	got, err = Parse(update, false, nil)
	assert.ErrorIs(t, err, errNotResponse, "an UPDATE response names nothing")
	assert.Empty(t, got)
	got, err = Parse(response(t, "a\x00\n.example.", dnsmessage.RCodeSuccess, rr{name: "a\x00\n.example.", addr: "192.0.2.1", ttl: 60}), false, nil)
	assert.ErrorIs(t, err, errNoQuestion, "a name of control bytes goes on no record")
	assert.Empty(t, got)
	chaos := response(t, "a.example.", dnsmessage.RCodeSuccess, rr{name: "a.example.", addr: "192.0.2.1", ttl: 60})
	// The answer's class (the last 10 bytes before its 4-byte address: type, class, TTL, length).
	binary.BigEndian.PutUint16(chaos[len(chaos)-4-8:], uint16(dnsmessage.ClassCHAOS))
	got, err = Parse(chaos, false, nil)
	assert.NoError(t, err)
	assert.Empty(t, got, "a CHAOS-class A record is no Internet address")
	got, err = Parse(loop, false, nil)
	assert.NoError(t, err)
	assert.Empty(t, got, "a CNAME loop reaches no address")
	_, err = Parse([]byte{1, 2, 3}, false, nil)
	assert.Error(t, err)
}

// A copy cut short keeps the answers before the cut; a whole message that does not parse names
// nothing, as a resolver takes nothing from it (an independent check connected to an address
// from a response whose last record was 3 bytes short, which glibc refused, and found it named).
func TestParseCutShort(t *testing.T) {
	msg := response(t, "a.example.", dnsmessage.RCodeSuccess,
		rr{name: "a.example.", addr: "192.0.2.1", ttl: 60}, rr{name: "a.example.", addr: "192.0.2.2", ttl: 60})
	got, err := Parse(msg[:len(msg)-2], true, nil)
	assert.Error(t, err)
	assert.Equal(t, []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), Name: "a.example", TTL: 60}}, got)

	got, err = Parse(msg[:len(msg)-2], false, nil)
	assert.Error(t, err)
	assert.Empty(t, got, "the whole message, malformed")
	prefixed := append(binary.BigEndian.AppendUint16(nil, uint16(len(msg)-2)), msg[:len(msg)-2]...)
	got, err = ParseTCP(prefixed, len(prefixed), nil)
	assert.Error(t, err)
	assert.Empty(t, got, "the whole message over TCP, malformed")
	got, _ = ParseTCP(prefixed[:len(prefixed)-3], len(prefixed), nil)
	assert.Equal(t, []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), Name: "a.example", TTL: 60}}, got,
		"a TCP message copied in part: as far as it goes")
}

// DNS over TCP: the length prefix with the message, alone, or alone in the segment before.
func TestParseTCP(t *testing.T) {
	msg := response(t, "a.example.", dnsmessage.RCodeSuccess, rr{name: "a.example.", addr: "192.0.2.1", ttl: 60})
	want := []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), Name: "a.example", TTL: 60}}
	prefixed := append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)

	got, err := ParseTCP(prefixed, len(prefixed), nil)
	assert.NoError(t, err)
	assert.Equal(t, want, got, "prefix and message in one segment")

	got, err = ParseTCP(prefixed[:2], 2, nil)
	assert.NoError(t, err)
	assert.Empty(t, got, "the prefix alone")

	got, err = ParseTCP(msg, len(msg), nil)
	assert.NoError(t, err)
	assert.Equal(t, want, got, "the message after a prefix sent alone")

	// The message after a prefix sent alone, whose ID reads as a prefix of the rest (an
	// independent check lost such an answer, uncounted: ID 50 in a 52-byte message).
	sameID := slices.Clone(msg)
	binary.BigEndian.PutUint16(sameID, uint16(len(msg)-2))
	got, err = ParseTCP(sameID, len(sameID), nil)
	assert.NoError(t, err)
	assert.Equal(t, want, got, "a bare message whose ID is its length less 2")

	long := append(binary.BigEndian.AppendUint16(nil, uint16(len(msg)+100)), msg...)
	got, _ = ParseTCP(long, len(long), nil)
	assert.Equal(t, want, got, "the start of a message longer than the segment")

	// Two answers written together (a resolver's A and AAAA queries on one connection), whole
	// or cut where the copy ended: each read (the first prefix was read as a message ID).
	msg6 := response(t, "a.example.", dnsmessage.RCodeSuccess, rr{name: "a.example.", addr: "2001:db8::1", ttl: 30})
	two := append(slices.Clone(prefixed), binary.BigEndian.AppendUint16(nil, uint16(len(msg6)))...)
	two = append(two, msg6...)
	both := append(slices.Clone(want), Answer{Addr: netip.MustParseAddr("2001:db8::1"), Name: "a.example", TTL: 30})
	got, err = ParseTCP(two, len(two), nil)
	assert.NoError(t, err)
	assert.Equal(t, both, got, "two messages in one segment")
	got, _ = ParseTCP(two[:len(prefixed)+2], len(two), nil)
	assert.Equal(t, want, got, "two messages, the copy cut after the second's prefix")
}

// Whatever bytes arrive from port 53 (a copy cut anywhere, a segment of a longer TCP message,
// garbage), parsing returns answers or an error, never panics, and every answer names an
// address with the queried name. Seeds: the shapes the other tests use.
func FuzzParseTCP(f *testing.F) {
	t := &testing.T{}
	chain := response(t, "api.example.com.", dnsmessage.RCodeSuccess,
		rr{name: "api.example.com.", target: "edge.cdn.net.", ttl: 300},
		rr{name: "edge.cdn.net.", addr: "192.0.2.1", ttl: 60},
		rr{name: "edge.cdn.net.", addr: "2001:db8::1", ttl: 20})
	prefixed := binary.BigEndian.AppendUint16(nil, uint16(len(chain)))
	f.Add(chain, len(chain))
	f.Add(append(prefixed, chain...), len(chain)+2)
	f.Add(prefixed, 2)
	f.Add(chain[:len(chain)/2], len(chain))
	f.Fuzz(func(t *testing.T, payload []byte, length int) {
		answers, _ := ParseTCP(payload, length, nil)
		for _, a := range answers {
			if !a.Addr.IsValid() || a.Name == "" {
				t.Fatalf("answer without an address or a name: %+v", a)
			}
		}
	})
}

// DNS over TCP from a server that writes the length prefix alone, then the message: the next
// segment is the bare message, and when it is longer than the copy (or its segment), its answers
// before the cut count. Its ID (0xbeef here) read as a prefix of at least the segment's length
// threw them away for a parse from byte 2, which is no response: lost, and counted nowhere
// (found by an independent check).
func TestParseTCPKeepsACutBareMessageWhoseIDReadsAsAPrefix(t *testing.T) {
	var answers []rr
	for i := range 90 {
		answers = append(answers, rr{name: "many.example.", addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), ttl: 60})
	}
	msg := response(t, "many.example.", dnsmessage.RCodeSuccess, answers...)
	require.Greater(t, len(msg), 1232)
	for _, tc := range []struct {
		name    string
		payload []byte
		length  int
	}{
		{"longer than the copy", msg[:1232], len(msg)},
		{"longer than its segment", msg[:1000], 1000},
	} {
		got, _ := ParseTCP(tc.payload, tc.length, nil)
		require.NotEmpty(t, got, tc.name)
		assert.Equal(t, "many.example", got[0].Name, tc.name)
		assert.Equal(t, netip.MustParseAddr("192.0.2.1"), got[0].Addr, tc.name)
	}
}

// A response whose address record's length is not an address's: dnsmessage reads 4 (16) bytes
// whatever the length says, so a length of 0 named the next record's first bytes as an address
// no record holds, and a length of 5 an address resolvers refuse (found by an independent
// check). The whole response is malformed, as resolvers take it.
func TestParseRefusesAnAddressRecordOfTheWrongLength(t *testing.T) {
	question := []byte{1, 'x', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1} // x.example A IN
	record := func(typ uint16, rdata []byte, rdlength int) []byte {
		r := []byte{0xc0, 12} // the question's name
		r = binary.BigEndian.AppendUint16(r, typ)
		r = append(r, 0, 1, 0, 0, 0, 60) // IN, TTL 60
		r = binary.BigEndian.AppendUint16(r, uint16(rdlength))
		return append(r, rdata...)
	}
	message := func(records ...[]byte) []byte {
		m := []byte{0xbe, 0xef, 0x81, 0x80, 0, 1}
		m = binary.BigEndian.AppendUint16(m, uint16(len(records)))
		m = append(m, 0, 0, 0, 0)
		m = append(m, question...)
		for _, r := range records {
			m = append(m, r...)
		}
		return m
	}
	a := func(addr string) []byte { b := netip.MustParseAddr(addr).As4(); return b[:] }
	aaaa := func(addr string) []byte { b := netip.MustParseAddr(addr).As16(); return b[:] }

	got, err := Parse(message(record(1, a("192.0.2.1"), 4), record(28, aaaa("2001:db8::1"), 16)), false, nil)
	require.NoError(t, err)
	assert.Len(t, got, 2, "the well-formed response the cases below break")
	for name, msg := range map[string][]byte{
		"A of length 0, before another record": message(record(1, nil, 0), record(1, a("192.0.2.2"), 4)),
		"A of length 5":                        message(record(1, append(a("192.0.2.3"), 0), 5)),
		"AAAA of length 4":                     message(record(28, a("192.0.2.4"), 4), record(1, a("192.0.2.5"), 4)),
		"AAAA of length 17":                    message(record(28, append(aaaa("2001:db8::2"), 0), 17)),
	} {
		got, err := Parse(msg, false, nil)
		assert.ErrorIs(t, err, errRDLength, name)
		assert.Empty(t, got, "%s: no address from a malformed response", name)
	}
}

// Pipelined answers over TCP (a resolver's A and AAAA queries on one connection) written
// together are cut where a segment ends: a segment holds whole responses and the start of the
// next. None of them was read, nor counted (found by an independent check); each is read, the
// last as far as it goes, and its cut is no error.
func TestParseTCPReadsPipelinedResponsesCutByTheSegment(t *testing.T) {
	prefix := func(m []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(m))), m...) }
	one := response(t, "one.example.", dnsmessage.RCodeSuccess, rr{name: "one.example.", addr: "192.0.2.1", ttl: 60})
	two := response(t, "two.example.", dnsmessage.RCodeSuccess, rr{name: "two.example.", addr: "192.0.2.2", ttl: 60})
	var many []rr
	for i := range 20 {
		many = append(many, rr{name: "many.example.", addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}).String(), ttl: 60})
	}
	three := response(t, "many.example.", dnsmessage.RCodeSuccess, many...)
	answer := func(name, addr string) Answer { return Answer{Addr: netip.MustParseAddr(addr), Name: name, TTL: 60} }

	seg := append(prefix(one), prefix(three)...)
	cut := len(prefix(one)) + 2 + len(three)/2 // inside the third response's records
	got, err := ParseTCP(seg[:cut], cut, nil)
	assert.NoError(t, err, "the cut is the segment's, not a malformed response")
	require.NotEmpty(t, got)
	assert.Equal(t, answer("one.example", "192.0.2.1"), got[0], "the whole response")
	assert.Greater(t, len(got), 1, "the next one's answers before the cut")
	for _, a := range got[1:] {
		assert.Equal(t, "many.example", a.Name)
	}

	seg = append(append(prefix(one), prefix(two)...), prefix(three)...)
	cut = len(prefix(one)) + len(prefix(two)) + 30
	got, err = ParseTCP(seg[:cut], cut, nil)
	assert.NoError(t, err)
	assert.Equal(t, []Answer{answer("one.example", "192.0.2.1"), answer("two.example", "192.0.2.2")}, got, "two whole responses, the third cut in its question")

	cut = len(prefix(one)) + 2
	got, err = ParseTCP(seg[:cut], cut, nil)
	assert.NoError(t, err)
	assert.Equal(t, []Answer{answer("one.example", "192.0.2.1")}, got, "a whole response and the next one's prefix")

	// The copy ends before the segment does (its 1232 bytes): as far as the copy goes.
	got, _ = ParseTCP(seg[:len(prefix(one))+10], len(prefix(one))+len(prefix(two))+40, nil)
	assert.Equal(t, []Answer{answer("one.example", "192.0.2.1")}, got, "copied in part")
}
