//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"fmt"
	"os"

	"github.com/podnet/podnet/receiver/internal/procscan"
)

// notInNodeNetns says why podnet's own network namespace is not the node's, when it can tell:
// kthreadd (proc_root/2, with hostPID), which never leaves the node's, lives in another one.
// Not pid 1: a supervisor may keep its links unreadable even to root, and its namespace was
// then taken for the node's (found by an independent check). nil when they are the same, when
// node_netns is set, or when kthreadd's namespace cannot be read (attribution's start-up check
// of proc_root says why).
func (c ServiceBackendsConfig) notInNodeNetns(procRoot string) error {
	if c.Mode == backendsOff || c.NodeNetns != "" {
		return nil
	}
	hostNs := procscan.HostNetnsLink(procRoot)
	node, err := os.Stat(hostNs)
	if err != nil {
		return nil
	}
	own, err := os.Stat(ownNetns)
	if err != nil || os.SameFile(own, node) {
		return nil
	}
	return fmt.Errorf("podnet runs in a pod's network namespace, not the node's (%s), where kube-proxy translates: "+
		"run it with hostNetwork, or set service_backends.node_netns (and grant CAP_SYS_ADMIN to enter it)", hostNs)
}
