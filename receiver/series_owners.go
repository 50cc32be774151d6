//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"maps"
	"slices"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
)

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
type seriesOwners struct {
	byKey map[resourceKey]*ownerHistory
	// visible is set when resource_attributes turn off podnet.netns.inode or podnet.cgroup.id,
	// which tell local ends apart: ends whose Resources are then the same (two network
	// namespaces of one unnamed process's cgroup, two containers of a pod without their names)
	// share one owner, made for that Resource, so that they share series. Otherwise each would
	// emit the same series, with its own values and start time, under the same Resource: a
	// backend reads that as one series whose value jumps back and forth (found by an
	// independent check: 3 and 2 connections exported as two points of one series, Prometheus
	// kept 3).
	visible  map[visibleOwner]seriesOwner
	resource metadata.ResourceAttributesConfig
	nextGen  uint32 // of the owners visible makes: one per Resource
}

// visibleOwner is what an owner's Resource says of it: its identity and the names of its
// generation, less the attributes resource_attributes turned off.
type visibleOwner struct {
	netnsIno uint32
	cgroupID uint64
	names    attribution.Local
}

func newSeriesOwners(resource metadata.ResourceAttributesConfig) *seriesOwners {
	o := &seriesOwners{byKey: map[resourceKey]*ownerHistory{}, resource: resource}
	if !resource.PodnetNetnsInode.Enabled || !resource.PodnetCgroupID.Enabled {
		o.visible = map[visibleOwner]seriesOwner{}
	}
	return o
}

// ownerHistory is the generations of one identity, oldest first, and the local end last
// looked up and its owner: the same few ends recur in every batch, and each is one shared
// *localEnd.
type ownerHistory struct {
	gens      []ownerGeneration
	last      *localEnd
	lastOwner seriesOwner
}

type ownerGeneration struct {
	names attribution.Local // everything its events named
	gen   uint32
}

// of returns the owner of local's series.
func (o *seriesOwners) of(local *localEnd) seriesOwner {
	h := o.byKey[local.key]
	if h == nil {
		h = &ownerHistory{}
		o.byKey[local.key] = h
	} else if h.last == local {
		return h.lastOwner
	}
	g := h.generation(local.attr)
	h.last, h.lastOwner = local, o.visibleAs(ownerOf(local.key, g.gen), g.names)
	return h.lastOwner
}

// visibleAs is owner, or (visible) the one owner of every end whose Resource is owner's, an
// identity of its own: an end first unnamed, then named, moves from the unnamed ends' series to
// its pod's, never taking the first with it.
func (o *seriesOwners) visibleAs(owner seriesOwner, names attribution.Local) seriesOwner {
	if o.visible == nil {
		return owner
	}
	v := visibleOwner{names: o.resourceNames(names)}
	if o.resource.PodnetNetnsInode.Enabled {
		v.netnsIno = owner.netnsIno
	}
	if o.resource.PodnetCgroupID.Enabled {
		v.cgroupID = owner.cgroupID
	}
	if shared, ok := o.visible[v]; ok {
		return shared
	}
	shared := seriesOwner{netnsIno: v.netnsIno, gen: o.nextGen, cgroupID: v.cgroupID}
	o.nextGen++
	o.visible[v] = shared
	return shared
}

// resourceNames is names less those resource_attributes turned off.
func (o *seriesOwners) resourceNames(names attribution.Local) attribution.Local {
	for _, f := range [...]struct {
		name *string
		on   bool
	}{
		{&names.PodUID, o.resource.K8sPodUID.Enabled},
		{&names.PodName, o.resource.K8sPodName.Enabled},
		{&names.Namespace, o.resource.K8sNamespaceName.Enabled},
		{&names.ContainerName, o.resource.K8sContainerName.Enabled},
		{&names.ContainerID, o.resource.ContainerID.Enabled},
	} {
		if !f.on {
			*f.name = ""
		}
	}
	return names
}

// generation is the generation that names names: the newest that names no other workload (an
// unnamed end is the latest owner's), or a new one.
func (h *ownerHistory) generation(names attribution.Local) ownerGeneration {
	for i := len(h.gens) - 1; i >= 0; i-- {
		g := &h.gens[i]
		if !renamed(g.names, names) {
			g.names = mergeNames(g.names, names)
			return *g
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
	return h.gens[len(h.gens)-1]
}

// prune forgets the identities that no series has any more (inUse: the owners that have), and
// the Resources (visible) that none has.
func (o *seriesOwners) prune(inUse map[seriesOwner]struct{}) {
	used := func(owner seriesOwner) bool { _, ok := inUse[owner]; return ok }
	maps.DeleteFunc(o.byKey, func(k resourceKey, h *ownerHistory) bool {
		if h.last != nil && used(h.lastOwner) {
			return false
		}
		return !slices.ContainsFunc(h.gens, func(g ownerGeneration) bool { return used(ownerOf(k, g.gen)) })
	})
	maps.DeleteFunc(o.visible, func(_ visibleOwner, owner seriesOwner) bool { return !used(owner) })
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
