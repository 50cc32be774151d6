package k8smeta

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestTransformEndpointSlice(t *testing.T) {
	unset := fullEndpointSlice(2)
	unset.Endpoints[0].Conditions = discoveryv1.EndpointConditions{} // another controller's slice
	terminating := fullEndpointSlice(3)
	terminating.Endpoints[1].Conditions = discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}
	empty := fullEndpointSlice(4)
	empty.Endpoints = nil
	noService := fullEndpointSlice(5)
	delete(noService.Labels, discoveryv1.LabelServiceName)

	for name, c := range map[string]struct {
		slice *discoveryv1.EndpointSlice
		ready int
		index []string
	}{
		"2 ready, 1 not":                       {fullEndpointSlice(1), 2, []string{"shop/svc-00001"}},
		"ready unset counts as ready":          {unset, 2, []string{"shop/svc-00002"}},
		"serving but terminating is not ready": {terminating, 1, []string{"shop/svc-00003"}},
		"no endpoints":                         {empty, 0, []string{"shop/svc-00004"}},
		"no Service label: not indexed":        {noService, 2, nil},
	} {
		t.Run(name, func(t *testing.T) {
			obj, err := transformEndpointSlice(c.slice)
			require.NoError(t, err)
			s := obj.(*serviceSlice)
			assert.Equal(t, strippedMeta(&c.slice.ObjectMeta), s.ObjectMeta, "labels, owners and managed fields dropped")
			assert.Equal(t, c.ready, s.ready)
			keys, err := sliceService(s)
			require.NoError(t, err)
			assert.Equal(t, c.index, keys)
			again, err := transformEndpointSlice(s)
			require.NoError(t, err)
			assert.Same(t, s, again, "idempotent")
		})
	}
}
