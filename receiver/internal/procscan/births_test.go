package procscan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Where pod and container cgroups are made, for both kubelet cgroup drivers: the directories
// births watches.
func TestBornIn(t *testing.T) {
	for dir, want := range map[string]bool{
		"/kubepods.slice": true,
		"/kubepods.slice/kubepods-besteffort.slice":                                                                                          true,
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice":                                      true,
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope": false,
		"/kubepods":                         true,
		"/kubepods/besteffort":              true,
		"/kubepods/burstable/pod" + testUID: true,
		"/kubepods/burstable/pod" + testUID + "/" + testCID: false,
		"/system.slice":            false,
		"/system.slice/besteffort": false,
	} {
		ref, _ := ParseCgroupPath(dir)
		assert.Equal(t, want, bornIn(dir, ref), dir)
	}
}
