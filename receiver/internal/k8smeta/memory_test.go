package k8smeta

import (
	"math"
	"runtime"
	"testing"

	"k8s.io/client-go/tools/cache"
)

// TestMemoryPer10kPods measures the heap an informer cache holds for 10k pods after the
// transforms, indexes included, against the same pods stored whole. The bounds catch a
// transform that starts keeping a large field. Measured (Go 1.26, amd64), per 10k pods:
// whole pods 119 MiB; cluster-wide peers (addressOwner + IP and node-address indexes) 8.4 MiB,
// ~880 B/pod; local pods (localPod, 3 containers each, UID and node-address indexes) 11.6 MiB,
// ~1.2 kB/pod. The workload name and node addresses are interned (8 B each per pod); the
// node-address index's entry is most of the ~75 B/pod they added.
func TestMemoryPer10kPods(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB of pods")
	}
	const pods = 10_000
	cases := []struct {
		name      string
		transform cache.TransformFunc
		indexers  cache.Indexers
		maxBytes  uint64 // per 10k pods
	}{
		{"untransformed", func(o any) (any, error) { return o, nil }, cache.Indexers{ipIndex: addressIndex}, 0},
		{"peers (cluster-wide, by IP and node)", transformPeerPod, cache.Indexers{ipIndex: addressIndex, hostIPIndex: hostIPKeys}, 10 << 20},
		{"local (by UID and node, containers)", transformLocalPod, cache.Indexers{uidIndex: podUID, hostIPIndex: hostIPKeys}, 14 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			used := cachedBytes(t, pods, func(i int) any { return fullPod(i) }, c.transform, c.indexers)
			t.Logf("%s: %.1f MiB per %d pods (%d B/pod)", c.name, float64(used)/(1<<20), pods, used/pods)
			if c.maxBytes > 0 && used > c.maxBytes {
				t.Errorf("%d B per 10k pods, want at most %d", used, c.maxBytes)
			}
		})
	}
}

// TestMemoryPer10kEndpointSlices is TestMemoryPer10kPods for the cluster-wide EndpointSlice
// cache, one slice of three endpoints per Service. Measured (Go 1.26, amd64), per 10k slices:
// whole slices 38.8 MiB; serviceSlice + Service index 7.2 MiB, ~760 B/slice, as much as a
// peer pod: the ObjectMeta and the indexer's maps, not the count, are what a slice costs.
func TestMemoryPer10kEndpointSlices(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a hundred MB of EndpointSlices")
	}
	const slices = 10_000
	whole := cachedBytes(t, slices, func(i int) any { return fullEndpointSlice(i) }, func(o any) (any, error) { return o, nil }, nil)
	used := cachedBytes(t, slices, func(i int) any { return fullEndpointSlice(i) }, transformEndpointSlice, cache.Indexers{serviceIndex: sliceService})
	t.Logf("untransformed: %.1f MiB, transformed and indexed: %.1f MiB per %d slices (%d B/slice)",
		float64(whole)/(1<<20), float64(used)/(1<<20), slices, used/slices)
	if used > 10<<20 {
		t.Errorf("%d B per 10k slices, want at most %d", used, 10<<20)
	}
}

// cachedBytes is the heap that n objects hold in an informer's indexer after transform.
func cachedBytes(t *testing.T, n int, object func(int) any, transform cache.TransformFunc, indexers cache.Indexers) uint64 {
	t.Helper()
	before := heapInUse()
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, indexers)
	for i := range n {
		obj, err := transform(object(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	used := heapInUse() - before
	runtime.KeepAlive(store)
	return used
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryOfTheAddressHistory is what the address history adds per 10k pods held now plus a
// full past of maxEndedHoldings ended holdings: its holdings point at the informers' strings,
// so here the pods' objects are kept alive outside the measurement, as the informer does.
func TestMemoryOfTheAddressHistory(t *testing.T) {
	const pods = 10_000
	owners := make([]holder, 0, pods+maxEndedHoldings)
	for i := range pods + maxEndedHoldings {
		obj, err := transformPeerPod(fullPod(i))
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, ownerHolders(PeerPod)(obj)...)
	}
	before := heapInUse()
	h := newIPHistory()
	for i, c := range owners {
		h.claim(c.key, c.owner, math.MinInt64, false, 0)
		if i >= pods {
			h.release(c.key, c.owner, int64(i))
		}
	}
	used := heapInUse() - before
	runtime.KeepAlive(h)
	runtime.KeepAlive(owners)
	t.Logf("%d held and %d ended holdings: %.1f MiB (%d B per holding)", pods, maxEndedHoldings, float64(used)/(1<<20), used/uint64(len(owners)))
	if used > 6<<20 {
		t.Errorf("%d B, want at most %d", used, 6<<20)
	}
}
