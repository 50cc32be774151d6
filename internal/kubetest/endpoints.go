package kubetest

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Endpoint is one address of a Service's EndpointSlice, ready or not.
type Endpoint struct {
	Addr  netip.Addr
	Ready bool
}

// SetEndpoints writes the Service's IPv4 EndpointSlice as the EndpointSlice controller would
// (which no controller-manager runs here to do): created, or replaced with these endpoints.
func (c *Cluster) SetEndpoints(t testing.TB, namespace, service string, endpoints ...Endpoint) {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: service + "-v4", Namespace: namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
	}
	for _, e := range endpoints {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.Addr.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(e.Ready)},
		})
	}
	api := c.Admin.DiscoveryV1().EndpointSlices(namespace)
	ctx := context.Background()
	old, err := api.Get(ctx, slice.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = old.ResourceVersion
		_, err = api.Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("kubetest: endpoints of %s/%s: %v", namespace, service, err)
	}
}
