package k8smeta

import (
	"math"
	"slices"
	"time"

	"k8s.io/client-go/tools/cache"
)

// holder is an object's claim on an address, as an informer stores it.
type holder struct {
	key         string // see ipIndex
	owner       Peer
	terminating bool // a successor's claim ends it
	// since is when the owner began to hold it at the earliest, Unix ns (0: when its claim is
	// seen): a pod's or Service's creation, plus the second its timestamp's whole seconds may
	// have cut off. A pod uses its address before the API shows it: the kubelet posts the IP a
	// status sync after starting the sandbox, and the pod's first connections (an init
	// container's, a pool's) begin in between (found by an independent review: the server's
	// records of such a connection named no peer, to its close hours later).
	since int64
}

// handOvers feeds an ipHistory from one informer's changes. holdersOf lists what an object
// claims; the informer's ip index finds the other objects that claim an address.
type handOvers struct {
	history   *ipHistory
	inf       cache.SharedIndexInformer
	holdersOf func(obj any) []holder
	now       func() int64
}

// watchHandOvers keeps the history of the addresses inf's objects claim: a claim begins a
// holding when its owner was created, as far as the history allows (holder since; when it is
// seen, for an EndpointSlice's pod), but never before the address's last holder let it go; for
// objects of the first listing, since ever (their earlier holders are not known). It ends when
// no object of inf claims it any more (a pod deleted or finished, a Service deleted, a pod gone
// from every EndpointSlice) or, for a terminating owner, when a successor claims the address.
// The returned registration says when the handler has seen the first listing.
func (s *Store) watchHandOvers(inf cache.SharedIndexInformer, holdersOf func(obj any) []holder) (cache.ResourceEventHandlerRegistration, error) {
	h := &handOvers{history: s.history, inf: inf, holdersOf: holdersOf, now: func() int64 { return time.Now().UnixNano() }}
	return inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) { h.claim(h.holdersOf(obj), initial) },
		UpdateFunc: func(old, cur any) {
			claims := h.holdersOf(cur)
			h.released(dropped(h.holdersOf(old), claims))
			h.claim(claims, false)
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			h.released(h.holdersOf(obj))
		},
	})
}

func (h *handOvers) claim(claims []holder, initial bool) {
	now := h.now()
	from := now
	if initial {
		from = math.MinInt64 // held when the Store started: since before anything it reads
	}
	for _, c := range claims {
		f := from
		if !initial && c.since != 0 {
			f = min(c.since, now) // never before its address's last holder let it go (claim)
		}
		h.history.claim(c.key, c.owner, f, c.terminating, now)
	}
}

// dropped are the claims of old that cur no longer makes: most updates (a pod's status) keep
// them all, and need no index lookup.
func dropped(old, cur []holder) []holder {
	return slices.DeleteFunc(old, func(o holder) bool {
		return slices.ContainsFunc(cur, func(c holder) bool { return c.key == o.key && c.owner == o.owner })
	})
}

// released ends each claim that no object of the informer still makes: an update that keeps
// a claim, or another EndpointSlice that lists the same pod, ends nothing (the index already
// holds the updated object).
func (h *handOvers) released(claims []holder) {
	for _, c := range claims {
		if !h.claimed(c) {
			h.history.release(c.key, c.owner, h.now())
		}
	}
}

func (h *handOvers) claimed(c holder) bool {
	objs, err := h.inf.GetIndexer().ByIndex(ipIndex, c.key)
	if err != nil {
		return false
	}
	for _, obj := range objs {
		for _, o := range h.holdersOf(obj) {
			if o.key == c.key && o.owner == c.owner {
				return true
			}
		}
	}
	return false
}

// ownerHolders are a pod's or Service's claims (the peer pods' and Services' informers).
func ownerHolders(kind PeerKind) func(obj any) []holder {
	return func(obj any) []holder {
		a, ok := obj.(*addressOwner)
		if !ok {
			return nil
		}
		out := make([]holder, 0, len(a.ips))
		owner := Peer{Kind: kind, Name: a.Name, Namespace: a.Namespace, UID: string(a.UID), Workload: workloadName(a.workload)}
		var since int64
		if !a.CreationTimestamp.IsZero() {
			since = a.CreationTimestamp.Add(time.Second).UnixNano()
		}
		for _, ip := range a.ips {
			out = append(out, holder{key: ip, owner: owner, terminating: a.DeletionTimestamp != nil, since: since})
		}
		return out
	}
}

// sliceHolders are the claims of the pods an EndpointSlice lists (peer_pods endpoints). A slice
// names no pod's owner: each pod is a workload of its own.
func sliceHolders(obj any) []holder {
	s, ok := obj.(*serviceSlice)
	if !ok {
		return nil
	}
	var out []holder
	for _, p := range s.pods {
		owner := Peer{Kind: PeerPod, Name: p.name, Namespace: p.namespace, UID: p.uid, Workload: p.name}
		for _, ip := range p.ips {
			out = append(out, holder{key: ip, owner: owner, terminating: p.terminating})
		}
	}
	return out
}
