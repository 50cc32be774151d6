//go:build linux

package podnetreceiver

import "github.com/podnet/podnet/receiver/internal/attribution"

// seriesOwner is whose a metric series is: a local end's kernel identity, and which of the
// workloads that have had that identity while podnet ran (seriesOwners).
type seriesOwner struct {
	netnsIno uint32
	gen      uint32 // in resourceKey's padding: series keys are hashed per event
	cgroupID uint64
}

func ownerOf(k resourceKey, gen uint32) seriesOwner {
	return seriesOwner{netnsIno: k.netnsIno, gen: gen, cgroupID: k.cgroupID}
}

func (o seriesOwner) key() resourceKey {
	return resourceKey{netnsIno: o.netnsIno, cgroupID: o.cgroupID}
}

// maxOwnerGenerations is how many workloads one kernel identity remembers. Only the latest
// gets new events in practice (a socket's events name its pod until the pod is gone); the one
// before it may still see an event named when the hand-over raced with a drain.
const maxOwnerGenerations = 4

// seriesOwners tells apart the workloads that follow one another at one kernel identity. A
// network namespace's inode is free once its pod is gone, and busy nodes give it to the next
// pod at once; a socket of a process in no pod's cgroup (an nsenter probe, a node agent's
// check) carries nothing else. Keyed by
// identity alone, the next pod's series would continue the last one's, counts and start time
// included, under the new pod's names (found by an independent check). A naming that names a
// different workload (renamed) starts a generation; one that names the same workload, more of
// it or less of it (a pod deleted from the API server while its sockets close: namedOver) is
// the same generation. Only identities with series are kept (prune).
type seriesOwners map[resourceKey]*ownerHistory

// ownerHistory is the generations of one identity, oldest first, and the local end last
// looked up: the same few ends recur in every batch, and each is one shared *localEnd.
type ownerHistory struct {
	gens    []ownerGeneration
	last    *localEnd
	lastGen uint32
}

type ownerGeneration struct {
	names attribution.Local // everything its events named
	gen   uint32
}

// of returns the owner of local's series.
func (o seriesOwners) of(local *localEnd) seriesOwner {
	h := o[local.key]
	if h == nil {
		h = &ownerHistory{}
		o[local.key] = h
	} else if h.last == local {
		return ownerOf(local.key, h.lastGen)
	}
	h.last, h.lastGen = local, h.generation(local.attr)
	return ownerOf(local.key, h.lastGen)
}

// generation is the generation that names names: the newest that names no other workload (an
// unnamed end is the latest owner's), or a new one.
func (h *ownerHistory) generation(names attribution.Local) uint32 {
	for i := len(h.gens) - 1; i >= 0; i-- {
		g := &h.gens[i]
		if !renamed(g.names, names) {
			g.names = mergeNames(g.names, names)
			return g.gen
		}
	}
	gen := uint32(0)
	if len(h.gens) > 0 {
		gen = h.gens[len(h.gens)-1].gen + 1
	}
	if len(h.gens) == maxOwnerGenerations {
		h.gens = append(h.gens[:0], h.gens[1:]...)
	}
	h.gens = append(h.gens, ownerGeneration{names: names, gen: gen})
	return gen
}

// prune forgets the identities that no series has any more (inUse: those that have).
func (o seriesOwners) prune(inUse map[resourceKey]struct{}) {
	for k := range o {
		if _, ok := inUse[k]; !ok {
			delete(o, k)
		}
	}
}

// renamed: a and b name different workloads (a name both have differs).
func renamed(a, b attribution.Local) bool {
	for _, f := range localNames(a, b) {
		if f[0] != "" && f[1] != "" && f[0] != f[1] {
			return true
		}
	}
	return false
}

// mergeNames is a with what b names and a does not (a and b not renamed).
func mergeNames(a, b attribution.Local) attribution.Local {
	for _, f := range [...]struct {
		dst *string
		v   string
	}{
		{&a.PodUID, b.PodUID},
		{&a.PodName, b.PodName},
		{&a.Namespace, b.Namespace},
		{&a.ContainerName, b.ContainerName},
		{&a.ContainerID, b.ContainerID},
	} {
		if *f.dst == "" {
			*f.dst = f.v
		}
	}
	return a
}

// localNames pairs each name of a with b's.
func localNames(a, b attribution.Local) [5][2]string {
	return [...][2]string{
		{a.PodUID, b.PodUID},
		{a.PodName, b.PodName},
		{a.Namespace, b.Namespace},
		{a.ContainerName, b.ContainerName},
		{a.ContainerID, b.ContainerID},
	}
}
