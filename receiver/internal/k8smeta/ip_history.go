package k8smeta

import (
	"math"
	"slices"
	"sync"
)

// maxEndedHoldings bounds the history: the most recent address hand-overs of the cluster, kept so
// that a connection made before one is still named by the pod it reached when its close (or
// any later record of it) is read. A hand-over older than the last 16,384 falls back to the
// address's current owner. Each holding is a few pointers (its names are the informer
// objects' own strings): under 2 MiB in all.
const maxEndedHoldings = 16384

// Span is the time, in Unix ns, over which an answer holds: [From, To).
type Span struct{ From, To int64 }

// always is the span of an address that never changed hands while the Store watched.
var always = Span{From: math.MinInt64, To: math.MaxInt64}

// Holds says whether at falls in the span.
func (s Span) Holds(at int64) bool { return s.From <= at && at < s.To }

// holding is an owner that let an address go, and when the Store saw it do so.
type holding struct {
	owner Peer
	until int64
}

// ipHistory remembers who held each address before its current owner. Pod IPs are reused,
// often within seconds of a pod's deletion; without it a close of a connection to a deleted
// pod, read after a new pod took the address, named the new pod. Informer handlers write it,
// lookups read it.
type ipHistory struct {
	mu    sync.RWMutex
	ended map[string][]holding // by address key (see ipIndex), oldest first
	// order holds the address of every holding in the order they were added: a ring of
	// maxEndedHoldings, whose next slot, once full, names the address whose oldest holding
	// goes to make room.
	order []string
	next  int
}

func newIPHistory() *ipHistory {
	return &ipHistory{ended: map[string][]holding{}}
}

// end records that owner let key go at until. A second end of the same owner is ignored: the
// first is when the address went to a successor, the second the owner's deletion.
func (h *ipHistory) end(key string, owner Peer, until int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.ContainsFunc(h.ended[key], func(x holding) bool { return x.owner == owner }) {
		return
	}
	if len(h.order) == maxEndedHoldings {
		h.evictOldest(h.order[h.next])
		h.order[h.next] = key
	} else {
		h.order = append(h.order, key)
	}
	h.next = (h.next + 1) % maxEndedHoldings
	h.ended[key] = append(h.ended[key], holding{owner: owner, until: until})
}

func (h *ipHistory) evictOldest(key string) {
	rest := h.ended[key][1:]
	if len(rest) == 0 {
		delete(h.ended, key)
		return
	}
	h.ended[key] = slices.Clone(rest) // not a reslice: the dropped holding's names are freed
}

// ownerAt returns who held key at time at, when that was someone who has let it go since: of
// the holdings that ended after at, the first to end. Otherwise ok is false, and span is when
// the current owner (if any) has held the address: since the last hand-over.
func (h *ipHistory) ownerAt(key string, at int64) (owner Peer, span Span, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	span = always
	for _, x := range h.ended[key] {
		if at < x.until {
			span.To = x.until
			return x.owner, span, true
		}
		span.From = x.until
	}
	return Peer{}, span, false
}
