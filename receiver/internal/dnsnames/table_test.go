package dnsnames

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

const sec = int64(1e9)

func TestTableTTLAndRecency(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("192.0.2.1")
	tb.Add(1, a, "one.example", 100*sec, 30)
	assert.Equal(t, "one.example", tb.Lookup(1, a, 110*sec))
	assert.Equal(t, "one.example", tb.Lookup(1, netip.MustParseAddr("::ffff:192.0.2.1"), 110*sec), "IPv4-mapped is the same address")
	assert.Empty(t, tb.Lookup(1, a, 130*sec), "expired")
	assert.Empty(t, tb.Lookup(2, a, 110*sec), "another namespace")
	assert.Empty(t, tb.Lookup(1, a, 50*sec), "before it was resolved")

	tb.Add(1, a, "one.example", 120*sec, 30) // the same answer again extends it
	assert.Equal(t, "one.example", tb.Lookup(1, a, 140*sec))
	assert.Equal(t, "one.example", tb.Lookup(1, a, 105*sec), "valid since its first answer")

	tb.Add(1, a, "two.example", 145*sec, 30) // a newer name for the address wins
	assert.Equal(t, "two.example", tb.Lookup(1, a, 146*sec))
	assert.Equal(t, "one.example", tb.Lookup(1, a, 140*sec), "a connection made before the newer answer keeps its name")

	tb.Add(1, a, "zero.example", 200*sec, 0)
	assert.Equal(t, "zero.example", tb.Lookup(1, a, 200*sec+sec/2), "TTL 0: kept for the connection that follows")

	assert.Equal(t, "zero.example", tb.LookupDuring(1, a, 150*sec, 200*sec), "valid within the interval")
	assert.Empty(t, tb.LookupDuring(1, a, 202*sec, 210*sec))
}

func TestTableBound(t *testing.T) {
	tb := NewTable(2)
	tb.Add(1, netip.MustParseAddr("192.0.2.1"), "a", 0, 10)
	tb.Add(1, netip.MustParseAddr("192.0.2.2"), "b", 0, 100)
	tb.Add(1, netip.MustParseAddr("192.0.2.3"), "c", 50*sec, 10) // "a" has expired: swept
	assert.Equal(t, 2, tb.Len())
	assert.Zero(t, tb.Evicted)
	assert.Equal(t, "b", tb.Lookup(1, netip.MustParseAddr("192.0.2.2"), 50*sec))
	tb.Add(1, netip.MustParseAddr("192.0.2.4"), "d", 51*sec, 10) // none expired: one evicted
	assert.Equal(t, 2, tb.Len())
	assert.Equal(t, uint64(1), tb.Evicted)
	assert.Equal(t, "d", tb.Lookup(1, netip.MustParseAddr("192.0.2.4"), 51*sec))
}

// One address, several names in one pod (a CDN serving two of its hosts): each connection is
// named by the answer that came last before it began, also at its close after the other name
// was resolved; a third name drops the oldest.
func TestTableNamesOfOneAddress(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("2001:db8::1")
	tb.Add(1, a, "api.example", 100*sec, 300)
	tb.Add(1, a, "static.example", 110*sec, 300)
	assert.Equal(t, "api.example", tb.Lookup(1, a, 105*sec), "began between the two answers")
	assert.Equal(t, "static.example", tb.Lookup(1, a, 115*sec), "began after the second")
	assert.Equal(t, "static.example", tb.LookupDuring(1, a, 100*sec, 120*sec), "an interval with both: the most recent")

	tb.Add(1, a, "api.example", 120*sec, 300) // asked again: current once more, valid from its first answer
	assert.Equal(t, "api.example", tb.Lookup(1, a, 125*sec))
	assert.Equal(t, "api.example", tb.Lookup(1, a, 105*sec))
	assert.Equal(t, "static.example", tb.Lookup(1, a, 115*sec),
		"both valid: the one resolved last by then, as its connect was named before api.example came again")

	tb.Add(1, a, "img.example", 130*sec, 300)
	tb.Add(1, a, "cdn.example", 140*sec, 300)
	assert.Equal(t, "cdn.example", tb.Lookup(1, a, 145*sec))
	assert.Equal(t, "img.example", tb.Lookup(1, a, 135*sec))
	assert.Equal(t, "api.example", tb.Lookup(1, a, 125*sec))
	assert.Equal(t, "static.example", tb.Lookup(1, a, 115*sec), "four names kept: a connection made before three later answers keeps its own")
	tb.Add(1, a, "edge.example", 150*sec, 300) // the fifth: static.example, resolved least recently, is dropped
	assert.NotEqual(t, "static.example", tb.Lookup(1, a, 115*sec), "the oldest is gone")
	assert.Equal(t, "img.example", tb.Lookup(1, a, 135*sec))
	assert.Equal(t, 1, tb.Len())
}

// A connection is named when its event is read, a poll interval after it began: two more names
// resolved to its address meanwhile (within the clocks' skew, even) leave it its own.
func TestTableNamesAConnectByItsAnswerDespiteLaterOnes(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("10.240.0.9")
	const ms = int64(1e6)
	tb.Add(1, a, "a.test", 100*sec, 30)
	began := 100*sec + 1*ms
	tb.Add(1, a, "b.test", 100*sec+2*ms, 30)
	tb.Add(1, a, "c.test", 100*sec+3*ms, 30)
	assert.Equal(t, "a.test", tb.Lookup(1, a, began))
	assert.Equal(t, "c.test", tb.Lookup(1, a, 100*sec+4*ms))
}

// A table full of valid names evicts one per new answer without walking every entry each time.
func TestTableFullSweepsAtMostOncePerSecond(t *testing.T) {
	tb := NewTable(2)
	tb.Add(1, netip.MustParseAddr("192.0.2.1"), "a", 0, 100)
	tb.Add(1, netip.MustParseAddr("192.0.2.2"), "b", 0, 100)
	tb.Add(1, netip.MustParseAddr("192.0.2.3"), "c", 10*sec, 100) // sweeps, frees nothing, evicts one
	assert.Equal(t, 10*sec, tb.lastSweep)
	tb.Add(1, netip.MustParseAddr("192.0.2.4"), "d", 10*sec+sec/2, 100) // within a second: no sweep
	assert.Equal(t, 10*sec, tb.lastSweep)
	assert.Equal(t, uint64(2), tb.Evicted)
	assert.Equal(t, 2, tb.Len())
}

// The clocks of answers and of connections may be a few ms apart: an answer that arrived just
// after a connection began still names it, unless an older answer named it exactly.
func TestTableSkewPrefersTheExactAnswer(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("192.0.2.7")
	ms := sec / 1000
	tb.Add(1, a, "only.example", 100*sec+5*ms, 300)
	assert.Equal(t, "only.example", tb.Lookup(1, a, 100*sec), "within the skew: the only name")
	assert.Empty(t, tb.Lookup(1, a, 100*sec-20*ms), "beyond the skew")

	tb.Add(1, a, "first.example", 200*sec, 300)
	tb.Add(1, a, "second.example", 210*sec+5*ms, 300)
	assert.Equal(t, "first.example", tb.Lookup(1, a, 210*sec), "began 5 ms before the second answer: the first named it")
	assert.Equal(t, "second.example", tb.Lookup(1, a, 210*sec+6*ms))
}

// A connection's close is looked up at its start, however long after: the periodic sweep keeps
// names that expired within keepExpired (it dropped every expired one, and a close more than a
// sweep after its answer's TTL lost its name).
func TestTableKeepsExpiredNamesForCloses(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("192.0.2.7")
	tb.Add(1, a, "short.example", 100*sec, 2)
	tb.SweepExpired(160 * sec)
	assert.Equal(t, "short.example", tb.Lookup(1, a, 101*sec), "the close of a connection made at 101 s, a minute later")
	assert.Empty(t, tb.Lookup(1, a, 150*sec), "no new connection is named by an expired answer")
	tb.SweepExpired(100*sec + keepExpired + 3*sec)
	assert.Zero(t, tb.Len(), "dropped keepExpired after it expired")
}

// A name answered again after another name was, then again after a connection began: the close
// (looked up at the connection's start) is named as the connect was, by the answer that came
// last before it (found by an independent review: "static.example" at the close, the name of an
// answer before the connect's).
func TestTableNamesACloseAsItsConnectAcrossReResolutions(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("192.0.2.10")
	tb.Add(1, a, "api.example", 100*sec, 300)
	tb.Add(1, a, "static.example", 105*sec, 300)
	tb.Add(1, a, "api.example", 112*sec, 300)
	connect := tb.Lookup(1, a, 115*sec)
	tb.Add(1, a, "api.example", 120*sec, 300) // while the connection is open
	assert.Equal(t, "api.example", connect)
	assert.Equal(t, connect, tb.Lookup(1, a, 115*sec), "the close is named as its connect was")
	assert.Equal(t, "static.example", tb.Lookup(1, a, 108*sec), "a connection begun after static's answer")
}

// RFC 2181 §8: a TTL with its high bit set is 0. It was kept ~68 years (found by an independent
// check).
func TestATTLWithItsHighBitSetIsZero(t *testing.T) {
	tb := NewTable(16)
	a := netip.MustParseAddr("192.0.2.9")
	tb.Add(1, a, "odd.example", 100*sec, 0x80000000)
	assert.Equal(t, "odd.example", tb.Lookup(1, a, 100*sec), "valid when it arrived (a TTL of 0 counts as 1 s)")
	assert.Empty(t, tb.Lookup(1, a, 102*sec), "not after")
}
