package k8smeta

import (
	discoveryv1 "k8s.io/api/discovery/v1"
)

// endpointPod is a pod an EndpointSlice lists: what peer_pods endpoints names remote pods by.
type endpointPod struct {
	name, namespace, uid string
	ips                  []string
	// terminating: while a pod terminates its IP may already be its successor's, which then
	// wins (as in addressOwnerAt).
	terminating bool
}

// allServicesSelector is sliceSelector plus headless Services' slices: with peer_pods
// endpoints their pods (StatefulSets, mostly) are named too. ServiceReadyEndpoints is never
// asked about a headless Service (it has no ClusterIP), so its counts do not matter.
const allServicesSelector = discoveryv1.LabelServiceName

// transformEndpointSliceWithPods is transformEndpointSlice that also keeps the pods the slice
// lists (targetRef kind Pod) with their addresses; endpoints that are no pod are not kept.
func transformEndpointSliceWithPods(obj any) (any, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out, err := transformEndpointSlice(obj)
	if err != nil {
		return out, err
	}
	s := out.(*serviceSlice)
	for _, ep := range slice.Endpoints {
		ref := ep.TargetRef
		if ref == nil || ref.Kind != "Pod" || ref.Name == "" {
			continue
		}
		p := endpointPod{
			name: ref.Name, namespace: ref.Namespace, uid: string(ref.UID),
			terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
		}
		if p.namespace == "" {
			p.namespace = slice.Namespace
		}
		for _, a := range ep.Addresses {
			p.ips = appendAddr(p.ips, a)
		}
		s.pods = append(s.pods, p)
	}
	return s, nil
}

// endpointAddresses indexes a slice by its pods' addresses.
func endpointAddresses(obj any) ([]string, error) {
	s, ok := obj.(*serviceSlice)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, p := range s.pods {
		keys = append(keys, p.ips...)
	}
	return keys, nil
}
