package dnsnames

import (
	"net/netip"
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

type entry struct {
	name string
	// since is when the name was first resolved to the address (unix ns) in the run of answers
	// that kept it valid; expires is when the latest answer's TTL ran out.
	since, expires int64
}

// Table is the bounded map (network namespace inode, address) → the name most recently
// resolved to it there. Not safe for concurrent use.
type Table struct {
	max     int
	entries map[key]entry
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
// later answer replaces an earlier one; the same name again extends it.
func (t *Table) Add(netns uint32, addr netip.Addr, name string, at int64, ttl uint32) {
	k := key{netns, addr.Unmap()}
	expires := at + max(int64(ttl)*1e9, minTTL)
	if e, ok := t.entries[k]; ok {
		if e.name == name && at < e.expires {
			e.expires = max(e.expires, expires)
			t.entries[k] = e
			return
		}
		t.entries[k] = entry{name: name, since: at, expires: expires}
		return
	}
	if len(t.entries) >= t.max {
		t.makeRoom(at)
	}
	t.entries[k] = entry{name: name, since: at, expires: expires}
}

// makeRoom drops every expired entry, or when none has expired, one valid entry (whichever
// the map yields first: the table keeps no recency order, and a full table of valid names means
// the bound is too small for this node, which Evicted shows).
func (t *Table) makeRoom(now int64) {
	before := len(t.entries)
	t.Sweep(now)
	if len(t.entries) < before {
		return
	}
	for k := range t.entries {
		delete(t.entries, k)
		t.Evicted++
		return
	}
}

// Sweep drops the entries expired at now.
func (t *Table) Sweep(now int64) {
	for k, e := range t.entries {
		if e.expires <= now {
			delete(t.entries, k)
		}
	}
}

// Lookup is the name netns resolved to addr that was valid at time at (unix ns); "" if none.
func (t *Table) Lookup(netns uint32, addr netip.Addr, at int64) string {
	return t.LookupDuring(netns, addr, at, at)
}

// LookupDuring is the name netns resolved to addr that was valid at some time in [from, to]
// (unix ns): what the connections an interval's aggregate counted could have been made to.
func (t *Table) LookupDuring(netns uint32, addr netip.Addr, from, to int64) string {
	e, ok := t.entries[key{netns, addr.Unmap()}]
	if !ok || e.since > to+clockSkew || e.expires <= from {
		return ""
	}
	return e.name
}
