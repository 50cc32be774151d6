//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// In a UTS namespace of its own (a DaemonSet pod without hostNetwork, whose hostname is the
// pod's name) host.name is node_name, not the pod's name (found by an independent review:
// every Resource named after the agent pod, a new name at every rollout). In the node's, it is
// the hostname, as it always was; without node_name there is nothing better than it.
func TestHostNameIsTheNodesInAUTSNamespaceOfItsOwn(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg := NewDefaultConfig()
	cfg.NodeName = "node-1"
	own, err := os.Hostname()
	require.NoError(t, err)
	host, node := nodeNames(cfg)
	assert.Equal(t, own, host, "in the node's UTS namespace: its hostname")
	assert.Equal(t, "node-1", node)
	unreadable := NewDefaultConfig()
	unreadable.NodeName, unreadable.ProcRoot = "node-1", t.TempDir() // no kthreadd to compare with
	host, _ = nodeNames(unreadable)
	assert.Equal(t, "node-1", host, "cannot tell: node_name, never a pod's name")

	type names struct{ host, node, noNodeName string }
	got := make(chan names, 1)
	go func() {
		// This thread alone enters a new UTS namespace and ends with the goroutine (never
		// unlocked), so nothing else runs in it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			t.Error(err)
			got <- names{}
			return
		}
		if err := unix.Sethostname([]byte("podnet-x7k2p")); err != nil {
			t.Error(err)
		}
		var n names
		n.host, n.node = nodeNames(cfg)
		bare := NewDefaultConfig()
		bare.NodeName = ""
		n.noNodeName, _ = nodeNames(bare)
		got <- n
	}()
	n := <-got
	assert.Equal(t, "node-1", n.host, "a pod's own UTS namespace: node_name")
	assert.Equal(t, "node-1", n.node)
	assert.Equal(t, "podnet-x7k2p", n.noNodeName, "no node_name: the only name there is")
}
