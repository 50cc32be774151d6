//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"net/netip"
	"os"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/procscan"
)

// resourceKey is the local end's kernel identity: every event with the same key belongs to
// the same workload, so it shares one OTLP Resource.
type resourceKey struct {
	netnsIno uint32
	cgroupID uint64
}

// localEnd is a local end as attribution named it, with its Resource built once. It is
// immutable once built, so the reader, the logs converter and the metrics aggregator share it
// across goroutines without a lock.
type localEnd struct {
	key  resourceKey
	attr attribution.Local
	res  pcommon.Resource
	// nodeAddrs: for a local end of no pod in the node's network namespace (the node's own
	// processes), the node's addresses, which its connections leave from; zero otherwise. The
	// service graph names such a client by them, as the server's node would see it.
	nodeAddrs nodeAddrs
}

// nodeAddrs are a node's addresses, one per family at most.
type nodeAddrs [2]netip.Addr

func nodeAddrsOf(addrs []netip.Addr) (out nodeAddrs) {
	copy(out[:], addrs)
	return out
}

// of is the node's address of a family.
func (n nodeAddrs) of(ipv6 bool) (netip.Addr, bool) {
	for _, a := range n {
		if a.IsValid() && a.Unmap().Is6() == ipv6 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// namedOver is cur, unless cur is prev's workload with names prev had and cur lost: a local pod
// deleted from the API server while its sockets still close, or whose cgroup went first. Its
// series keep their names to the end; renamed, the same cumulative values would start over as a
// second series, with the same start time, under a Resource without the pod.
func namedOver(prev, cur *localEnd) *localEnd {
	if prev != nil && cur != nil && lostNames(prev.attr, cur.attr) {
		return prev
	}
	return cur
}

// lostNames: b names nothing that a does not, and lacks something a names.
func lostNames(a, b attribution.Local) bool {
	if a == b {
		return false
	}
	for _, f := range localNames(a, b) {
		if f[1] != "" && f[1] != f[0] {
			return false
		}
	}
	return true
}

const maxCachedResources = 4096

// resources builds and caches the local end of each key. A cached one is reused while its
// attribution is unchanged: pod identity can appear after a socket's first event (the /proc
// scan or the pod informer catches up) and changes when a pod goes away, and the lookup that
// tells costs far less than building a Resource. One goroutine owns it.
type resources struct {
	cfg      metadata.ResourceAttributesConfig
	attr     attribution.Attributor
	nodeName string
	hostName string
	// nodeNetns is the node's network namespace, where the node's own processes are; 0 when
	// unknown, or when the service graph (the one reader of their node addresses) is off.
	nodeNetns uint32
	cache     map[resourceKey]*localEnd
}

func newResources(cfg *Config, attr attribution.Attributor) *resources {
	host, node := nodeNames(cfg)
	r := &resources{
		cfg:      cfg.ResourceAttributes,
		attr:     attr,
		nodeName: node,
		hostName: host,
		cache:    map[resourceKey]*localEnd{},
	}
	if cfg.serviceGraphOn() {
		r.nodeNetns, _ = procscan.HostNetns(cfg.ProcRoot) // unreadable: no node process is named
	}
	return r
}

// get attributes k now and returns its local end.
func (r *resources) get(k resourceKey) *localEnd {
	local := r.attr.Local(k.netnsIno, k.cgroupID)
	var node nodeAddrs
	if local.PodUID == "" && r.nodeNetns != 0 && k.netnsIno == r.nodeNetns {
		node = nodeAddrsOf(r.attr.NodeAddrs())
	}
	if c, ok := r.cache[k]; ok && c.attr == local && c.nodeAddrs == node {
		return c
	}
	if len(r.cache) >= maxCachedResources {
		clear(r.cache)
	}
	rb := metadata.NewResourceBuilder(r.cfg)
	rb.SetHostName(r.hostName)
	rb.SetK8sNodeName(r.nodeName)
	rb.SetPodnetNetnsInode(int64(k.netnsIno))
	if k.cgroupID != 0 { // 0: unknown (a connection found in /proc), no cgroup's id
		rb.SetPodnetCgroupID(int64(k.cgroupID))
	}
	setIfKnown(rb.SetK8sPodUID, local.PodUID)
	setIfKnown(rb.SetK8sPodName, local.PodName)
	setIfKnown(rb.SetK8sNamespaceName, local.Namespace)
	setIfKnown(rb.SetK8sContainerName, local.ContainerName)
	setIfKnown(rb.SetContainerID, local.ContainerID)
	l := &localEnd{key: k, attr: local, res: rb.Emit(), nodeAddrs: node}
	r.cache[k] = l
	return l
}

// nodeNames are the host's name and the node's (node_name, by default the host's). The host's
// is the collector's own, unless the collector runs in a UTS namespace of its own (a pod without
// hostNetwork, as the example DaemonSet): that hostname is the pod's name, a new one at every
// rollout (found by an independent review: every Resource named podnet-x7k2p), so node_name
// names the host there, and wherever that cannot be told. The node's own hostname is not
// readable without CAP_SYS_ADMIN.
func nodeNames(cfg *Config) (host, node string) {
	host, _ = os.Hostname()
	if cfg.NodeName != "" && !sharesHostUTS(cfg.ProcRoot) {
		host = cfg.NodeName
	}
	node = cfg.NodeName
	if node == "" {
		node = host
	}
	return host, node
}

// sharesHostUTS says whether this thread's UTS namespace (hostname) is the node's (kthreadd's,
// in procRoot). False when either is unreadable (no CAP_SYS_PTRACE, a user namespace): node_name
// then names the host, as stable as the hostname at worst, never a pod's name.
func sharesHostUTS(procRoot string) bool {
	own, err := os.Stat("/proc/thread-self/ns/uts")
	if err != nil {
		return false
	}
	host, err := os.Stat(procscan.HostUTSLink(procRoot))
	if err != nil {
		return false
	}
	return os.SameFile(own, host)
}

// nodeEnd is the node as a local end, for what belongs to no one workload: only the node's
// names in its Resource.
func nodeEnd(cfg *Config) *localEnd {
	host, node := nodeNames(cfg)
	rb := metadata.NewResourceBuilder(cfg.ResourceAttributes)
	rb.SetHostName(host)
	rb.SetK8sNodeName(node)
	return &localEnd{res: rb.Emit()}
}

func setIfKnown(set func(string), v string) {
	if v != "" {
		set(v)
	}
}
