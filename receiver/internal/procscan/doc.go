// Package procscan attributes a socket's local end to the pod and container that own it,
// from the two kernel identities the BPF programs capture for every TCP event: the socket's
// network-namespace inode and its cgroup v2 id.
//
// It never uses IP addresses: hostNetwork pods share the node's address, so only the cgroup
// can tell them apart. The cgroup id is tried first; the network namespace is the fallback
// for sockets whose cgroup says nothing (cgroup v1 kubelets, where the v2 cgroup of a
// container is its runtime's), and never for the host namespace.
//
// A Scanner walks /proc periodically and on demand, and publishes immutable maps that
// Lookup reads without locks or allocation; a cgroup newer than the last scan is opened by its
// id, so a new pod's first event is attributed before any rescan.
package procscan // import "github.com/podnet/podnet/receiver/internal/procscan"
