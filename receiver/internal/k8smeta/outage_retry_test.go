package k8smeta

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var pods = schema.GroupResource{Resource: "pods"}

// tooLargeResourceVersion is how an API server whose watch cache lags says so.
var tooLargeResourceVersion = &apierrors.StatusError{ErrStatus: metav1.Status{
	Status: metav1.StatusFailure, Code: 504, Reason: metav1.StatusReasonTimeout,
	Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge}}},
}}

func TestIsOutage(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"unexpected EOF", errors.New("unexpected EOF"), true},
		{"503 starting", apierrors.NewServiceUnavailable("not ready"), true},
		{"500 etcd away", apierrors.NewInternalError(errors.New("etcdserver: request timed out")), true},
		{"504 timeout", apierrors.NewTimeoutError("timed out", 1), true},
		{"504 resource version too large", tooLargeResourceVersion, false},
		{"410 expired", apierrors.NewResourceExpired("too old"), false},
		{"403", apierrors.NewForbidden(pods, "", errors.New("no")), false},
		{"429", apierrors.NewTooManyRequests("slow down", 1), false},
	} {
		assert.Equal(t, tc.want, isOutage(tc.err), tc.name)
	}
}

// A refusal is retried at the Store's pace only shortly after the same informer found the API
// server away: a restarted server refuses until its authorizer has the RBAC objects.
func TestRefusalSettlesAfterOutage(t *testing.T) {
	ctx := context.Background()
	var told []error
	failed := 0
	h := newHealth(func(err error) { told = append(told, err) }, func() { failed++ })
	var denied []error
	deny := func(err error) { denied = append(denied, err) }
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", errors.New("no"))

	assert.False(t, h.record(ctx, "endpointslices", "list", forbidden, deny), "a refusal with no outage before is final")
	assert.Len(t, denied, 1)

	assert.True(t, h.record(ctx, "endpointslices", "list", apierrors.NewServiceUnavailable("down"), deny), "away")
	assert.True(t, h.record(ctx, "endpointslices", "list", forbidden, deny), "refused right after: settling")
	assert.True(t, h.record(ctx, "pods", "list", apierrors.NewServiceUnavailable("down"), nil))
	assert.Len(t, denied, 1, "no denial while settling")
	assert.False(t, h.record(ctx, "endpointslices", "list", apierrors.NewResourceExpired("too old"), deny), "an expired version is the reflector's")

	h.outages["endpointslices"] = time.Now().Add(-settleAfterOutage - time.Second)
	assert.False(t, h.record(ctx, "endpointslices", "list", forbidden, deny), "refused long after the outage: final")
	assert.Len(t, denied, 2)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.False(t, h.record(cancelled, "pods", "watch", context.Canceled, nil), "stopping")
	assert.False(t, h.record(ctx, "pods", "list", nil, nil), "served")
	assert.Equal(t, []error{nil}, told[len(told)-1:], "healthy once every informer is served")
	assert.Equal(t, 4, failed, "failed calls: two unavailable, the settling refusal, the expired version; not the denials, the cancelled call or the success")
}

// Each informer the account is refused is told, not only the first (found by an independent
// check: without any binding only "list pods" was ever named); an outage, failing every
// informer, is told once.
func TestEveryRefusedInformerIsTold(t *testing.T) {
	ctx := context.Background()
	var told []error
	h := newHealth(func(err error) { told = append(told, err) }, func() {})
	forbidden := func(resource string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "", errors.New("no"))
	}
	h.record(ctx, "pods", "list", forbidden("pods"), nil)
	h.record(ctx, "services", "list", forbidden("services"), nil)
	h.record(ctx, "services", "list", forbidden("services"), nil) // again: nothing new
	require.Len(t, told, 2, "each refused informer told once")
	assert.ErrorContains(t, told[1], "services")
	assert.ErrorContains(t, told[1], "pods", "with what is still refused")

	told = nil
	h = newHealth(func(err error) { told = append(told, err) }, func() {})
	h.record(ctx, "pods", "watch", apierrors.NewServiceUnavailable("down"), nil)
	h.record(ctx, "services", "watch", apierrors.NewServiceUnavailable("down"), nil)
	assert.Len(t, told, 1, "an outage told once")
}

// An informer whose first calls found the API server away, then refused, is told the refusal:
// the outage's error was the status in force for good (found by an independent check against
// a real API server: a Store started during an outage, its account without services).
func TestARefusalAfterAnOutageAtStartIsTold(t *testing.T) {
	ctx := context.Background()
	var told []error
	h := newHealth(func(err error) { told = append(told, err) }, func() {})
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("no"))

	for _, name := range []string{"pods", "services"} {
		assert.True(t, h.record(ctx, name, "list", apierrors.NewServiceUnavailable("down"), nil), "away")
	}
	require.Len(t, told, 1, "the outage, once")
	assert.False(t, h.record(ctx, "pods", "list", nil, nil))
	h.outages["services"] = time.Now().Add(-settleAfterOutage - time.Second)
	assert.False(t, h.record(ctx, "services", "list", forbidden, nil), "refused long after the outage: final")
	require.Len(t, told, 2, "the refusal is told: %v", told)
	assert.ErrorContains(t, told[1], "examples/rbac.yaml")
	assert.False(t, h.record(ctx, "services", "list", forbidden, nil))
	assert.Len(t, told, 2, "told once")
}
