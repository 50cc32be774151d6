package k8smeta

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// BenchmarkPeerByIP is the per-address cost of naming a peer on the read loop (the receiver
// asks once per address per batch): a cluster of 10k pods and 1k Services, in the informers'
// own indexers after the same transforms as in production; every lookup hits a pod, the
// common case (a Service is looked up first and missed).
func BenchmarkPeerByIP(b *testing.B) {
	const pods, services = 10_000, 1_000
	s := &Store{
		peers:    filledInformer(b, &corev1.Pod{}, transformPeerPod, pods, func(i int) any { return fullPod(i) }),
		services: filledInformer(b, &corev1.Service{}, transformService, services, func(i int) any { return service(i) }),
	}
	addrs := make([]netip.Addr, pods)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fullPod(i).Status.PodIP)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := s.PeerByIP(addrs[i%pods]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func filledInformer(b *testing.B, example runtime.Object, transform cache.TransformFunc, n int, obj func(int) any) cache.SharedIndexInformer {
	inf, err := newInformer(nil, example, transform, cache.Indexers{ipIndex: addressIndex})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		o, err := transform(obj(i))
		if err != nil {
			b.Fatal(err)
		}
		if err := inf.GetIndexer().Add(o); err != nil {
			b.Fatal(err)
		}
	}
	return inf
}

func service(i int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%04d", i), Namespace: "shop", UID: "svc-uid"},
		Spec:       corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)}},
	}
}
