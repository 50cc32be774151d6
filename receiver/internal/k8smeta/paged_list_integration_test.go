package k8smeta

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/kubetest"
)

// TestPeerPodsListedInPages: against a real API server, the Store lists every pod of the
// cluster in pages (1,200 pods: three list calls of at most 500), so it never holds the whole
// cluster's pods at once, and names every one of them; the node's own pods and the Services,
// small lists, come in one cached answer each.
func TestPeerPodsListedInPages(t *testing.T) {
	c := kubetest.Start(t)
	kubeconfig := loadRBAC(t).Apply(t, c)
	namespaces := []string{"shop", "pay"}
	for _, ns := range namespaces {
		c.Namespace(t, ns)
	}
	c.CreateServices(t, kubetest.BulkServices{Namespaces: namespaces, Services: 12})
	pods := c.CreatePods(t, kubetest.BulkPods{Namespaces: namespaces, Pods: 1200, Nodes: 12, Services: 12})

	s, traffic := startCountedStore(t, kubeconfig, Options{NodeName: kubetest.NodeName(0)})
	assert.True(t, attributesAll(s, pods), "every pod named by its IP, across the pages")
	lists := map[string]int{}
	for req, n := range traffic.Requests() {
		if req.Verb == "list" {
			lists[req.Path+"?"+req.FieldSelector] += n
		}
	}
	t.Logf("list calls: %v", lists)
	assert.Equal(t, 3, lists["/api/v1/pods?"+peerPodSelector], "every pod of the cluster, in pages of %d", listPageSize)
	assert.Equal(t, 1, lists["/api/v1/pods?spec.nodeName="+kubetest.NodeName(0)], "the node's own pods: one cached answer")
	assert.Equal(t, 1, lists["/api/v1/services?"+serviceSelector], "the Services: one cached answer")
}
