package k8smeta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// health tracks the outcome of each informer's latest list or watch call and tells onStatus
// when the Store turns unhealthy (an error) or healthy again (nil). Informers have no
// "connected again" signal, so the calls themselves are observed.
type health struct {
	onStatus     func(error)
	onCallFailed func()

	mu      sync.Mutex
	errs    map[string]error     // by informer; a nil entry is a success
	outages map[string]time.Time // by informer: when a call last found the API server away
	refused map[string]bool      // by informer: its latest call was refused, not while the API server settled
	served  map[string]bool      // by informer: some call of it succeeded
	failed  bool                 // what onStatus was last told
}

func newHealth(onStatus func(error), onCallFailed func()) *health {
	return &health{onStatus: onStatus, onCallFailed: onCallFailed, errs: map[string]error{}, outages: map[string]time.Time{}, refused: map[string]bool{}, served: map[string]bool{}}
}

// observedListWatch is a ListWatch whose calls report their outcome. It also opts out of
// client-go's streaming watch-list: that path backs off with a sleep that ignores
// cancellation (reflector.go, watchList), which held Stop — and the collector's shutdown — for
// up to the 30 s backoff cap while the API server was down. Plain list + watch backs off
// interruptibly.
type observedListWatch struct{ *cache.ListWatch }

func (observedListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// observe wraps lw so that every list and watch call reports its outcome under name, and
// is retried at the Store's pace while the API server is away (untilServed).
func (h *health) observe(name string, lw *cache.ListWatch) cache.ListerWatcher {
	return h.observeOptional(name, lw, nil)
}

// observeOptional is observe for metadata the Store can go without: a call the account is
// not allowed to make, or for a resource the API server does not serve, goes to denied
// instead of counting as trouble. As trouble it would hold the Store's status at an error
// until someone changed the RBAC, hiding every real outage and recovery behind it.
func (h *health) observeOptional(name string, lw *cache.ListWatch, denied func(error)) cache.ListerWatcher {
	return observedListWatch{&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return untilServed(ctx, func() (runtime.Object, bool, error) {
				obj, err := lw.ListWithContextFunc(ctx, opts)
				return obj, h.record(ctx, name, "list", err, denied), err
			})
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return untilServed(ctx, func() (watch.Interface, bool, error) {
				w, err := lw.WatchFuncWithContext(ctx, opts)
				return w, h.record(ctx, name, "watch", err, denied), err
			})
		},
	}}
}

// record notes the outcome of a call and says whether to make it again at the Store's pace
// (untilServed): while the API server is away, and while it may still be starting.
func (h *health) record(ctx context.Context, name, verb string, err error, denied func(error)) (again bool) {
	if ctx.Err() != nil {
		return false // stopping: a cancelled call says nothing about the API server
	}
	again = h.settling(name, err)
	if err != nil {
		err = fmt.Errorf("kubernetes metadata: %s %s: %w", verb, name, err)
		switch {
		case again:
			// Not the answer to act on: no denial is final while the API server settles.
		case denied != nil && (apierrors.IsForbidden(err) || apierrors.IsNotFound(err)):
			denied(err)
			err = nil // gone without, not failing: an earlier error of this informer is cleared
		case apierrors.IsForbidden(err):
			err = fmt.Errorf("%w (the collector's account needs get, list and watch on pods and services: see examples/rbac.yaml)", err)
		}
		if err != nil {
			h.onCallFailed()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock() // held during onStatus so that reports arrive in order
	// Never served, not told yet: an informer whose first calls met an outage (a node booting
	// beside its API server) is told when it is then refused (found by an independent check: the
	// outage's "connection refused" stayed the status for good, the refusal never named).
	firstRefusal := err != nil && !again && !h.served[name] && !h.refused[name] && apierrors.IsForbidden(err)
	h.errs[name] = err
	h.refused[name] = err != nil && !again && isRefusal(err)
	h.served[name] = h.served[name] || err == nil
	status := errors.Join(h.sortedErrs()...)
	// Told again when an informer's first call is refused while another's error is being
	// reported: each permission the account lacks is named (found by an independent check: only
	// the first was), where an outage, which fails every informer, is told once, and so is a
	// restarted API server's refusals before its authorizer has loaded the RBAC objects (which
	// meet informers that were served before).
	if (status != nil) != h.failed || (h.failed && firstRefusal) {
		h.failed = status != nil
		h.onStatus(status)
	}
	return again
}

// refusedFor says whether the API server refused informer name's latest call for good (who
// it is, what it may do, what the server serves): Start stops waiting for its listing.
func (h *health) refusedFor(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused[name]
}

// settling says whether err leaves the API server's answer open: it is away (isOutage), or
// it refused the informer shortly after being away. A restarted API server listens before
// its authorizer has loaded the RBAC objects and answers 403 meanwhile (~1 s in
// TestNamesPodsSoonAfterHardRestart); taken as final, that would stop the EndpointSlice
// informer for good (denySlices) or back the reflector off.
func (h *health) settling(name string, err error) bool {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		return false
	case isOutage(err):
		h.outages[name] = now
		return true
	default:
		return isRefusal(err) && now.Sub(h.outages[name]) < settleAfterOutage
	}
}

// sortedErrs returns the failing informers' errors in name order, for a stable message.
func (h *health) sortedErrs() []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(h.errs)) {
		if err := h.errs[name]; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
