package k8smeta

import (
	"sync"

	"k8s.io/client-go/tools/cache"
)

// maxGonePods bounds the local pods remembered after their deletion. A pod leaves the API
// server once the kubelet has stopped its containers, but its sockets' last events come later
// (closes read after the fact, FIN_WAIT and TIME_WAIT, an interval's aggregates drained after
// it): named by the pod they belonged to, not by nobody. A node runs a few hundred pods at most,
// and 1,024 deletions later no socket of the first is left; each entry is a stripped pod.
const maxGonePods = 1024

// gonePods are this node's most recently deleted pods, by UID (UIDs are never reused).
type gonePods struct {
	mu    sync.RWMutex
	byUID map[string]*localPod
	order []string // a ring of maxGonePods UIDs, oldest at next once full
	next  int
}

func newGonePods() *gonePods { return &gonePods{byUID: map[string]*localPod{}} }

// watchGone remembers the local pods inf deletes.
func (g *gonePods) watchGone(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*localPod); ok {
				g.add(p)
			}
		},
	})
	return err
}

func (g *gonePods) add(p *localPod) {
	uid := string(p.UID)
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.byUID[uid]; ok {
		return
	}
	if len(g.order) == maxGonePods {
		delete(g.byUID, g.order[g.next])
		g.order[g.next] = uid
	} else {
		g.order = append(g.order, uid)
	}
	g.next = (g.next + 1) % maxGonePods
	g.byUID[uid] = p
}

func (g *gonePods) get(uid string) (*localPod, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	p, ok := g.byUID[uid]
	return p, ok
}
