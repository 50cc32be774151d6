package procscan

import (
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// maxResolved bounds the cgroups resolved by id between two scans: enough for a node's burst
// of new pods, small enough that events from an endless stream of new cgroups cost a bounded
// number of system calls before they wait for the next scan like any other unknown key.
const maxResolved = 1024

// resolver names cgroups the last scan had not seen, one by one by id, so that a new pod's
// first connection is attributed although its cgroup is younger than the snapshot: the
// rate-limited rescan would come too late for that event. Its entries live until the next
// scan, which knows them all.
type resolver struct {
	fs       *cgroupFS // nil: no cgroup2 hierarchy
	disabled atomic.Bool
	warnOnce sync.Once
	logger   *zap.Logger

	mu      sync.Mutex
	known   map[uint64]Ref      // a zero Ref: resolved, in no pod, or gone
	removed map[uint64]struct{} // of known: gone when resolved
}

// lookup returns the pod of a cgroup missing from the snapshot, resolving it at most once;
// ok is false when it could not be resolved (no privilege, bound reached); removed, when it
// was gone already (what it was is unknown).
func (r *resolver) lookup(id uint64) (ref Ref, ok, removed bool) {
	if r.fs == nil || r.disabled.Load() {
		return Ref{}, false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ref, ok := r.known[id]; ok {
		_, removed = r.removed[id]
		return ref, true, removed
	}
	if len(r.known) >= maxResolved {
		return Ref{}, false, false
	}
	path, err := r.fs.pathOf(id)
	if err != nil {
		if errors.Is(err, errNoHandles) {
			r.disabled.Store(true)
			r.warnOnce.Do(func() {
				r.logger.Warn("cannot open cgroups by id (needs CAP_DAC_READ_SEARCH): a new pod's first connections may lack its identity until the next scan", zap.Error(err))
			})
		}
		return Ref{}, false, false
	}
	if path != "" {
		ref, _ = ParseCgroupPath(path)
	}
	if r.known == nil {
		r.known = make(map[uint64]Ref)
	}
	r.known[id] = ref
	if path == "" {
		if r.removed == nil {
			r.removed = make(map[uint64]struct{})
		}
		r.removed[id] = struct{}{}
	}
	return ref, true, path == ""
}

// take forgets what was resolved, once a scan has published a snapshot that holds it, and
// returns it (for the cgroups that left before that scan: departed).
func (r *resolver) take() map[uint64]Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := r.known
	r.known, r.removed = nil, nil
	return known
}
