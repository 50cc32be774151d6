// Package dnsnames remembers, per network namespace, which DNS name each address was resolved
// from, so that a connection to an address outside the cluster can be named by the name its pod
// asked for (semconv server.address) without any reverse lookup.
//
// The kernel side (bpf/dns.bpf.c, an object of its own) is one cgroup_skb/ingress program on the
// root of the cgroup v2 hierarchy: it sees every packet delivered to a socket of any network
// namespace and copies DNS responses (UDP or TCP, source port 53) to a ring buffer. This package
// parses them (A, AAAA and CNAME answers, chains followed back to the queried name) into a
// bounded table keyed by (network namespace inode, address), each entry valid for its answer's
// TTL.
package dnsnames // import "github.com/podnet/podnet/receiver/internal/dnsnames"
