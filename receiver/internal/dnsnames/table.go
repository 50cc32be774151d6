package dnsnames

import (
	"math"
	"net/netip"
	"time"
)

// minTTL is the least time an answer is kept, in ns: a TTL of 0 tells caches not to keep the
// answer, yet the client that asked uses it at once, and that connection is the one to name.
const minTTL = int64(1e9)

// clockSkew is how far before an answer's arrival a lookup still finds it, in ns: answer times
// and event times are both the kernel's boot clock, converted to wall time by separate clocks
// (event.Clock) that agree to well within this.
const clockSkew = int64(10e6)

type key struct {
	netns uint32
	addr  netip.Addr
}

// namesPerAddress is how many names an address keeps in one namespace. A connection is named
// when its event is read (up to a poll interval after it began), and at its close by its start:
// the names resolved to its address after it began must not have pushed its own out. Pods
// resolving several hosts a CDN serves from one address are the common case; a fifth name in
// one namespace drops the oldest.
const namesPerAddress = 4

type entry struct {
	// names are the names resolved to the address, the most recently resolved first; each kept
	// until it is pushed out, also past its TTL: a connection made to a name before the next
	// was resolved (and closed after) is still named as it was made.
	names [namesPerAddress]resolved
}

type resolved struct {
	name string
	// since is when the name was first resolved to the address (unix ns) in the run of answers
	// that kept it valid; last when it was most recently resolved; expires is when the latest
	// answer's TTL ran out.
	since, last, expires int64
}

// validDuring says whether r was resolved by to (give or take skew) and still valid after from.
func (r resolved) validDuring(from, to, skew int64) bool {
	return r.name != "" && r.since <= to+skew && r.expires > from
}

// answeredBy is when r was last resolved by time to (give or take skew), as far as the entry
// knows: its latest answer if that came by then, else its first.
func (r resolved) answeredBy(to, skew int64) int64 {
	if r.last <= to+skew {
		return r.last
	}
	return r.since
}

// Table is the bounded map (network namespace inode, address) → the names most recently
// resolved to it there. Not safe for concurrent use.
type Table struct {
	max       int
	entries   map[key]entry
	lastSweep int64
	// Evicted counts valid entries removed to make room (the table was full of unexpired ones).
	Evicted uint64
}

// NewTable returns a table holding at most max entries.
func NewTable(max int) *Table {
	return &Table{max: max, entries: make(map[key]entry, min(max, 4096))}
}

// Len is how many entries the table holds, expired ones included until swept.
func (t *Table) Len() int { return len(t.entries) }

// Add records that netns resolved name to addr at time at (unix ns), valid for ttl seconds. A
// later answer with another name becomes the current one (the one it replaces stays as the
// previous); the same name again extends it.
func (t *Table) Add(netns uint32, addr netip.Addr, name string, at int64, ttl uint32) {
	if ttl > math.MaxInt32 {
		ttl = 0 // RFC 2181 §8: a TTL with its high bit set is 0 (it was kept ~68 years)
	}
	k := key{netns, addr.Unmap()}
	r := resolved{name: name, since: at, last: at, expires: at + max(int64(ttl)*1e9, minTTL)}
	e, ok := t.entries[k]
	if !ok && len(t.entries) >= t.max {
		t.makeRoom(at)
	}
	t.entries[k] = e.add(r)
}

// add is the entry with r resolved: the same name still valid is extended and becomes the most
// recent, unless another name was answered since its last answer (a run keeps only its first and
// last answers: extended across another name's, a lookup between them would name the other
// name once the run's last answer is past it, so a close was named unlike its connect: found
// by an independent review); another name, or such a run, goes first, and the oldest drops.
func (e entry) add(r resolved) entry {
	for i := range e.names {
		n := e.names[i]
		if n.name == r.name && r.since < n.expires && !e.answeredAfter(i, n.last) {
			n.expires = max(n.expires, r.expires)
			n.last = max(n.last, r.since)
			copy(e.names[1:i+1], e.names[:i])
			e.names[0] = n
			return e
		}
	}
	copy(e.names[1:], e.names[:len(e.names)-1])
	e.names[0] = r
	return e
}

// answeredAfter says whether a name other than names[i]'s was answered after at.
func (e entry) answeredAfter(i int, at int64) bool {
	for j, n := range e.names {
		if j != i && n.name != "" && n.name != e.names[i].name && n.last > at {
			return true
		}
	}
	return false
}

// expires is when the entry's last name expires.
func (e entry) expires() int64 {
	var t int64
	for _, n := range e.names {
		t = max(t, n.expires)
	}
	return t
}

// sweepAtMostEvery bounds how often a full table sweeps itself to make room: a sweep walks every
// entry, and a table full of valid names would otherwise walk it for every new answer.
const sweepAtMostEvery = int64(1e9)

// makeRoom drops every expired entry (at most once per sweepAtMostEvery), or when that frees
// nothing, one valid entry (whichever the map yields first: the table keeps no recency order,
// and a full table of valid names means the bound is too small for this node, which Evicted
// shows).
func (t *Table) makeRoom(now int64) {
	if now-t.lastSweep >= sweepAtMostEvery {
		before := len(t.entries)
		t.lastSweep = now
		t.Sweep(now)
		if len(t.entries) < before {
			return
		}
	}
	for k := range t.entries {
		delete(t.entries, k)
		t.Evicted++
		return
	}
}

// Sweep drops the entries expired by before (unix ns). A lookup of a later time never finds an
// expired name, but a close is named at its connection's start (Lookup), however long ago that
// was: the periodic sweep keeps what expired within keepExpired, and a full table (makeRoom)
// drops every expired entry first.
func (t *Table) Sweep(before int64) {
	for k, e := range t.entries {
		if e.expires() <= before {
			delete(t.entries, k)
		}
	}
}

// keepExpired is how long after its TTL ran out a name stays for the closes of connections
// made to it while it was valid (as long as the table has room).
const keepExpired = 24 * int64(time.Hour)

// SweepExpired is the periodic sweep at now: entries expired more than keepExpired ago.
func (t *Table) SweepExpired(now int64) { t.Sweep(now - keepExpired) }

// Lookup is the name netns resolved to addr most recently before time at (unix ns) and still
// valid then; "" if none.
func (t *Table) Lookup(netns uint32, addr netip.Addr, at int64) string {
	return t.LookupDuring(netns, addr, at, at)
}

// LookupDuring is the name netns resolved to addr that was valid at some time in [from, to]
// (unix ns), the most recent one when both were: what the connections an interval's aggregate
// counted could have been made to.
func (t *Table) LookupDuring(netns uint32, addr netip.Addr, from, to int64) string {
	e, ok := t.entries[key{netns, addr.Unmap()}]
	if !ok {
		return ""
	}
	// Exactly first: a newer answer may have come just after the connection began, within the
	// clocks' skew, and an older one is then the name it was made to. Of several valid names,
	// the one resolved last by `to` (the more recent on a tie): what the answers up to then said,
	// so that a close is named as its connect was, whatever was resolved in between.
	for _, skew := range [2]int64{0, clockSkew} {
		best := -1
		for i := range e.names {
			if e.names[i].validDuring(from, to, skew) &&
				(best < 0 || e.names[i].answeredBy(to, skew) > e.names[best].answeredBy(to, skew)) {
				best = i
			}
		}
		if best >= 0 {
			return e.names[best].name
		}
	}
	return ""
}
