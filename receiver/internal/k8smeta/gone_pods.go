package k8smeta

import (
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/fifomap"
)

// maxGonePods bounds the local pods remembered after their deletion. A pod leaves the API
// server once the kubelet has stopped its containers, but its sockets' last events come later
// (closes read after the fact, FIN_WAIT and TIME_WAIT, an interval's aggregates drained after
// it): named by the pod they belonged to, not by nobody. A node runs a few hundred pods at most,
// and 1,024 deletions later no socket of the first is left; each entry is a stripped pod.
const maxGonePods = 1024

// gonePods are this node's most recently deleted pods, by UID (UIDs are never reused), and a
// static pod's mirror also by the kubelet's UID of it (mirrorOf): its cgroups carry that one.
type gonePods struct {
	*fifomap.Map[string, *localPod]
}

func newGonePods() gonePods { return gonePods{fifomap.New[string, *localPod](maxGonePods)} }

// watchGone remembers the local pods inf deletes.
func (g gonePods) watchGone(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*localPod); ok {
				g.Add(string(p.UID), p)
				if p.mirrorOf != "" {
					// The kubelet's UID of a static pod stays when its mirror pod is made
					// again (deleted by hand): the mirror deleted last names it (found by an
					// independent review: the first one's UID and containers).
					g.Put(p.mirrorOf, p)
				}
			}
		},
	})
	return err
}
