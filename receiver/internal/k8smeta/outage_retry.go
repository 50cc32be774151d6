package k8smeta

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// outageRetry paces the Store's retries while the API server is away: 0.5 s, doubling, then
// between 2.5 and 5 s for as long as it lasts, jittered so that the nodes of a cluster do not
// come back in step. client-go's reflector would otherwise back off on its own (0.8 s doubling
// to a 30 s cap, jittered up to twice that, reset only two minutes after it began): after a
// 20 s outage it waited up to a minute more before asking again, and pods created meanwhile
// stayed unnamed (see TestNamesPodsSoonAfterHardRestart). Failing calls are retried here,
// where the pace is ours, so the reflector's backoff grows by at most one step per outage.
var outageRetry = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 2500 * time.Millisecond, Steps: math.MaxInt32}

// settleAfterOutage is how long after a call found the API server away its refusals are
// not taken as final (health.settling): far longer than a restarted API server takes to load
// its RBAC objects, short enough that a real loss of rights is acted on.
const settleAfterOutage = 30 * time.Second

// untilServed makes call again, paced by outageRetry, for as long as call says to (health
// record: the API server is away or still settling) and ctx lasts. Any other outcome is the
// caller's, the reflector's, to act on: an expired resource version means a relist; a
// lasting refusal (forbidden, too many requests) keeps client-go's longer backoff, which
// spares an API server that answers.
func untilServed[T any](ctx context.Context, call func() (T, bool, error)) (T, error) {
	pace := outageRetry
	for {
		out, again, err := call()
		if !again || ctx.Err() != nil {
			return out, err
		}
		t := time.NewTimer(pace.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return out, err
		case <-t.C:
		}
	}
}

// isOutage says whether err means that no API server answered (refused, reset, timed out)
// or that it could not serve the request (5xx: starting, or etcd away). A resource version
// too large for this API server's watch cache is a 504 too, but the reflector acts on it
// (it lists from etcd instead).
func isOutage(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError &&
			!apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
	}
	return true
}

// isRefusal says whether err is the API server declining the informer's request: who it is
// (401), what it may do (403), or what the server serves (404).
func isRefusal(err error) bool {
	return apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err)
}
