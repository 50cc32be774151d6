package k8smeta

import (
	"time"

	"k8s.io/client-go/tools/cache"
)

// holder is an object's claim on an address, as an informer stores it.
type holder struct {
	key         string // see ipIndex
	owner       Peer
	terminating bool // its successor, if any, already holds the address
}

// handOvers feeds an ipHistory from one informer's changes. holdersOf lists what an object
// claims; the informer's ip index finds the other claims on an address.
type handOvers struct {
	history   *ipHistory
	inf       cache.SharedIndexInformer
	holdersOf func(obj any) []holder
	now       func() int64
}

// watchHandOvers records, from inf's changes, when each owner lets an address go: when no
// object claims it for that owner any more (a pod deleted or finished, a Service deleted, a
// pod gone from every EndpointSlice), or when a terminating owner's successor appears with
// it, which from then on is the one named.
func (s *Store) watchHandOvers(inf cache.SharedIndexInformer, holdersOf func(obj any) []holder) error {
	h := &handOvers{history: s.history, inf: inf, holdersOf: holdersOf, now: func() int64 { return time.Now().UnixNano() }}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { h.takeOvers(h.holdersOf(obj)) },
		UpdateFunc: func(old, cur any) {
			h.released(h.holdersOf(old))
			h.takeOvers(h.holdersOf(cur))
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			h.released(h.holdersOf(obj))
		},
	})
	return err
}

// released ends each claim that no object of the informer still makes. An update that keeps
// a claim ends nothing; the index already holds the updated object.
func (h *handOvers) released(claims []holder) {
	for _, c := range claims {
		if !h.claimed(c.key, func(o holder) bool { return o.owner == c.owner }) {
			h.history.end(c.key, c.owner, h.now())
		}
	}
}

// takeOvers ends the terminating owners of each address that a non-terminating owner claims.
func (h *handOvers) takeOvers(claims []holder) {
	for _, c := range claims {
		if c.terminating {
			continue
		}
		for _, o := range h.claimsOn(c.key) {
			if o.terminating && o.owner != c.owner {
				h.history.end(c.key, o.owner, h.now())
			}
		}
	}
}

func (h *handOvers) claimed(key string, match func(holder) bool) bool {
	for _, o := range h.claimsOn(key) {
		if match(o) {
			return true
		}
	}
	return false
}

// claimsOn lists every claim the informer's objects make on key.
func (h *handOvers) claimsOn(key string) []holder {
	objs, err := h.inf.GetIndexer().ByIndex(ipIndex, key)
	if err != nil {
		return nil
	}
	var out []holder
	for _, obj := range objs {
		for _, c := range h.holdersOf(obj) {
			if c.key == key {
				out = append(out, c)
			}
		}
	}
	return out
}

// ownerHolders are a pod's or Service's claims (the peer pods' and Services' informers).
func ownerHolders(kind PeerKind) func(obj any) []holder {
	return func(obj any) []holder {
		a, ok := obj.(*addressOwner)
		if !ok {
			return nil
		}
		out := make([]holder, 0, len(a.ips))
		owner := Peer{Kind: kind, Name: a.Name, Namespace: a.Namespace, UID: string(a.UID)}
		for _, ip := range a.ips {
			out = append(out, holder{key: ip, owner: owner, terminating: a.DeletionTimestamp != nil})
		}
		return out
	}
}

// sliceHolders are the claims of the pods an EndpointSlice lists (peer_pods endpoints).
func sliceHolders(obj any) []holder {
	s, ok := obj.(*serviceSlice)
	if !ok {
		return nil
	}
	var out []holder
	for _, p := range s.pods {
		owner := Peer{Kind: PeerPod, Name: p.name, Namespace: p.namespace, UID: p.uid}
		for _, ip := range p.ips {
			out = append(out, holder{key: ip, owner: owner, terminating: p.terminating})
		}
	}
	return out
}
