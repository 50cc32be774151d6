package k8smeta

import (
	"math"
	"slices"
	"sync"

	"github.com/podnet/podnet/receiver/internal/timespan"
)

// maxEndedHoldings bounds the history's past: the most recent 16,384 holdings that ended in the
// cluster (an address's pod deleted or finished, its Service deleted), kept so that a connection
// made before one ended is still named by the owner it reached when its close (or any later
// record of it) is read. Connections begun before a forgotten holding are named by nobody rather
// than by a later owner. A holding takes ~170 B with its share of the map (its names are the
// informer objects' own strings): ~2.7 MiB for the past, and ~1.5 MiB per 10k addresses held
// now (TestMemoryOfTheAddressHistory).
const maxEndedHoldings = 16384

// open is the end of a holding that has not ended.
const open = math.MaxInt64

// Span is the time over which an answer holds.
type Span = timespan.Span

// always is the span of an address's answer when nothing ever changed.
var always = timespan.Always

// holding is one owner's time with an address: [from, until).
type holding struct {
	owner       Peer
	from, until int64
	// terminating: the owner is going away; a successor's claim ends the holding.
	terminating bool
}

// ipHistory is who held each address when: the source of every peer lookup, so that a
// connection is named by who held its peer's address when it began, not when its record is
// read. Pod IPs are reused, often within seconds of a pod's deletion. Informer handlers write
// it (ip_handovers.go), lookups read it.
type ipHistory struct {
	mu    sync.RWMutex
	byKey map[string][]holding // by address key (see ipIndex), in order of from
	// ended holds the address of every holding that ended, in the order they ended: a ring of
	// maxEndedHoldings whose next slot, once full, names the address whose oldest ended holding
	// goes to make room.
	ended []string
	next  int
	// forgotten is when the latest forgotten holding ended: a claim dated earlier (from its
	// owner's creation) starts there, as its address may have been that holding's then.
	forgotten int64
}

func newIPHistory() *ipHistory {
	return &ipHistory{byKey: map[string][]holding{}}
}

// claim records that owner holds key, since from at the earliest: never before the address's
// last holder let it go. A claim already held only updates terminating. A claim that is not
// terminating ends the terminating holdings of others (their successor has the address), except
// in the first listing (from the beginning of time), where both are held and the one not going
// away is named (ownerAt).
func (h *ipHistory) claim(key string, owner Peer, from int64, terminating bool, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.byKey[key]
	if from != math.MinInt64 {
		from = max(from, h.forgotten)
	}
	held := -1
	for i := range hs {
		x := &hs[i]
		switch {
		case x.until != open:
			from = max(from, x.until)
		case x.owner == owner:
			held = i
		case !terminating && x.terminating && from != math.MinInt64:
			h.endLocked(key, x, now)
			from = max(from, now)
		}
	}
	if held >= 0 {
		hs[held].terminating = terminating
		return
	}
	// A terminating owner whose successor holds the address handed it over already: an update
	// of it after (its containers' terminated states, its final deletion) does not take it back,
	// whether or not the successor is terminating by then (found by an independent review: once
	// the successor was terminating in turn, the two holdings tied, and the successor's
	// connections were named after the earlier owner).
	if terminating && slices.ContainsFunc(hs, func(x holding) bool { return x.until == open }) {
		return
	}
	i, _ := slices.BinarySearchFunc(hs, from, func(x holding, from int64) int {
		if x.from <= from {
			return -1
		}
		return 1
	})
	h.byKey[key] = slices.Insert(hs, i, holding{owner: owner, from: from, until: open, terminating: terminating})
}

// release records that owner let key go at until.
func (h *ipHistory) release(key string, owner Peer, until int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.byKey[key]
	for i := range hs {
		if hs[i].owner == owner && hs[i].until == open {
			h.endLocked(key, &hs[i], until)
		}
	}
}

func (h *ipHistory) endLocked(key string, x *holding, until int64) {
	x.until = max(until, x.from)
	if len(h.ended) == maxEndedHoldings {
		h.forgetOldestEnded(h.ended[h.next])
		h.ended[h.next] = key
	} else {
		h.ended = append(h.ended, key)
	}
	h.next = (h.next + 1) % maxEndedHoldings
}

// forgetOldestEnded drops key's earliest ended holding (ended holdings leave in the order they
// ended, which for one address is the order they began).
func (h *ipHistory) forgetOldestEnded(key string) {
	hs := h.byKey[key]
	i := slices.IndexFunc(hs, func(x holding) bool { return x.until != open })
	if i < 0 {
		return
	}
	h.forgotten = max(h.forgotten, hs[i].until)
	// Not a reslice: the dropped holding's names are freed.
	if rest := slices.Delete(slices.Clone(hs), i, i+1); len(rest) > 0 {
		h.byKey[key] = rest
	} else {
		delete(h.byKey, key)
	}
}

// ownerAt returns who held key at time at. Of two holdings at once (a terminating owner and its
// successor, seen in either order), the one not going away, else the later. ok is false when
// nobody held it then (between two holdings, before the first one known, after the last
// ended). span is the time over which the answer holds: between the holdings' nearest starts
// and ends around at.
func (h *ipHistory) ownerAt(key string, at int64) (owner Peer, span Span, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	span = always
	var best *holding
	for i := range h.byKey[key] {
		x := &h.byKey[key][i]
		for _, b := range [2]int64{x.from, x.until} {
			if b <= at {
				span.From = max(span.From, b)
			} else {
				span.To = min(span.To, b)
			}
		}
		if x.from <= at && at < x.until && (best == nil || preferred(x, best)) {
			best = x
		}
	}
	if best == nil {
		return Peer{}, span, false
	}
	return best.owner, span, true
}

func preferred(x, than *holding) bool {
	if x.terminating != than.terminating {
		return !x.terminating
	}
	return x.from >= than.from
}
