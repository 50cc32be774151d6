package k8smeta

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestStoreWithoutListVerb proves that the list verb of examples/rbac.yaml is needed and that
// its absence is reported clearly, not as a silent empty cache: the same manifest, minus
// list, must fail the initial sync and report a forbidden status naming the fix.
func TestStoreWithoutListVerb(t *testing.T) {
	kubeconfig := rbacWithout(t, func(r *rbacv1.PolicyRule) {
		r.Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == "list" })
	})

	_, status, synced := startStore(t, kubeconfig, "node-a", 3*time.Second)
	assert.False(t, synced, "initial sync without the list verb")
	err := status.next(t, 30*time.Second)
	require.Error(t, err)
	t.Logf("status: %v", err)
	assert.ErrorContains(t, err, "forbidden")
	// Whichever informer fails first is reported: pods or services.
	assert.Regexp(t, `cannot list resource "(pods|services)"`, err.Error())
	assert.ErrorContains(t, err, "examples/rbac.yaml")
}

// TestStartDoesNotWaitForARefusedInformer: an account that may read pods but not Services
// starts naming pods as soon as they are listed, instead of waiting out the sync timeout for
// a listing the RBAC will not allow (every Start took the whole 10 s). The refusal is still
// reported, and Services stay unlisted.
func TestStartDoesNotWaitForARefusedInformer(t *testing.T) {
	kubeconfig := rbacWithout(t, func(r *rbacv1.PolicyRule) {
		r.Resources = slices.DeleteFunc(r.Resources, func(res string) bool { return res == "services" })
	})

	const syncTimeout = 2 * time.Minute
	began := time.Now()
	s, status, synced := startStore(t, kubeconfig, "node-a", syncTimeout)
	waited := time.Since(began)
	assert.False(t, synced, "Services were refused: not synced")
	// Not a performance bound: the wait either ends at the refusal or at the timeout.
	assert.Less(t, waited, syncTimeout/2, "Start waited for the refused Services")
	assert.Equal(t, []string{"services"}, s.Unlisted())
	err := status.next(t, 30*time.Second)
	require.Error(t, err)
	assert.ErrorContains(t, err, `cannot list resource "services"`)
}

// rbacWithout applies examples/rbac.yaml with each of its rules changed by drop to a new API
// server, and returns the kubeconfig of its account.
func rbacWithout(t *testing.T, drop func(*rbacv1.PolicyRule)) string {
	t.Helper()
	c := kubetest.Start(t)
	objs := loadRBAC(t)
	for i := range objs.Role.Rules {
		drop(&objs.Role.Rules[i])
	}
	return objs.Apply(t, c)
}
