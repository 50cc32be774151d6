package k8smeta

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// listPageSize is how many objects one list call brings: the most whole objects the Store
// holds at once while it lists (a pod is ~15 KB decoded).
const listPageSize = 500

// pagedList lists in pages and strips each object as its page arrives, so that an initial
// list (or a relist) never holds the whole cluster's objects at once: the reflector keeps the
// full list until the informer's transform has seen every item - at 10k pods a 275 MiB RSS
// peak for a cache of ~10 MiB. The reflector's first list asks for resourceVersion "0", which
// the watch cache answers whole whatever the limit (measured against kube-apiserver 1.37); so
// it asks for the current state ("") instead, which is paged - from the watch cache on
// Kubernetes 1.31+ (consistent lists from cache), from etcd page by page before. A relist
// from a known version keeps its meaning, "at least that version". The informer's transform
// runs again on the stripped objects and leaves them as they are.
//
// Only the cluster-wide pod list is paged: the current state is a consistent read, which
// costs the API server more than a cached "any version" answer (measured with 20 agents at 5k
// pods: the node's own pods, a field-selected list, went from ~0.3 s to ~4 s of API server CPU
// when read that way), and the other lists are small (a node's pods) or far smaller than the
// pods (Services, EndpointSlices).
func pagedList(list func(context.Context, metav1.ListOptions) (runtime.Object, error), transform cache.TransformFunc) func(context.Context, metav1.ListOptions) (runtime.Object, error) {
	return func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		opts.Limit = listPageSize
		switch rv := opts.ResourceVersion; {
		case rv == "0":
			opts.ResourceVersion = "" // "any version" is never paged; "the current one" is
		case rv != "" && opts.ResourceVersionMatch == "":
			// A relist from the last resource version: with a limit and no match, the API server
			// would answer exactly at that (old) version instead of at least at it.
			opts.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
		}
		out := &metav1.List{}
		for {
			page, err := list(ctx, opts)
			if err != nil {
				return nil, err
			}
			err = meta.EachListItem(page, func(obj runtime.Object) error {
				stripped, err := transform(obj)
				if err != nil {
					return err
				}
				o, ok := stripped.(runtime.Object)
				if !ok {
					return fmt.Errorf("kubernetes metadata: a stripped %T is no runtime.Object", stripped)
				}
				out.Items = append(out.Items, runtime.RawExtension{Object: o})
				return nil
			})
			if err != nil {
				return nil, err
			}
			lm, err := meta.ListAccessor(page)
			if err != nil {
				return nil, err
			}
			if lm.GetContinue() == "" {
				out.ResourceVersion = lm.GetResourceVersion()
				return out, nil
			}
			opts.Continue, opts.ResourceVersion, opts.ResourceVersionMatch = lm.GetContinue(), "", ""
		}
	}
}

// paged makes lw's lists pagedList's.
func paged(lw *cache.ListWatch, transform cache.TransformFunc) *cache.ListWatch {
	lw.ListWithContextFunc = pagedList(lw.ListWithContextFunc, transform)
	return lw
}
