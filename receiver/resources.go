package receiver

import (
	"os"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
)

// resourceKey is the local end's kernel identity: every event with the same key belongs to
// the same workload, so it shares one OTLP Resource.
type resourceKey struct {
	netnsIno uint32
	cgroupID uint64
}

const (
	maxCachedResources = 4096
	// Pod identity can appear after the first events (the pod informer or the /proc scan
	// catches up), so built resources are rebuilt this often.
	resourceTTL = 10 * time.Second
)

// resources builds and caches the Resource of each local end.
type resources struct {
	cfg      metadata.ResourceAttributesConfig
	attr     attribution.Attributor
	nodeName string
	hostName string
	cache    map[resourceKey]pcommon.Resource
	built    time.Time
}

func newResources(cfg *Config, attr attribution.Attributor) *resources {
	host, _ := os.Hostname()
	node := cfg.NodeName
	if node == "" {
		node = host
	}
	return &resources{
		cfg:      cfg.ResourceAttributes,
		attr:     attr,
		nodeName: node,
		hostName: host,
		cache:    map[resourceKey]pcommon.Resource{},
		built:    time.Now(),
	}
}

func (r *resources) get(k resourceKey) pcommon.Resource {
	if len(r.cache) >= maxCachedResources || time.Since(r.built) > resourceTTL {
		clear(r.cache)
		r.built = time.Now()
	}
	if res, ok := r.cache[k]; ok {
		return res
	}
	rb := metadata.NewResourceBuilder(r.cfg)
	rb.SetHostName(r.hostName)
	rb.SetK8sNodeName(r.nodeName)
	rb.SetPodnetNetnsInode(int64(k.netnsIno))
	rb.SetPodnetCgroupID(int64(k.cgroupID))
	local := r.attr.Local(k.netnsIno, k.cgroupID)
	setIfKnown(rb.SetK8sPodUID, local.PodUID)
	setIfKnown(rb.SetK8sPodName, local.PodName)
	setIfKnown(rb.SetK8sNamespaceName, local.Namespace)
	setIfKnown(rb.SetK8sContainerName, local.ContainerName)
	setIfKnown(rb.SetContainerID, local.ContainerID)
	res := rb.Emit()
	r.cache[k] = res
	return res
}

func setIfKnown(set func(string), v string) {
	if v != "" {
		set(v)
	}
}
