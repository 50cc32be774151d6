package procscan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Where pod and container cgroups are made, for both kubelet cgroup drivers: the directories
// births watches.
func TestBornIn(t *testing.T) {
	for _, c := range []struct {
		dir  string
		want bool
	}{
		// systemd's cgroup driver
		{"/kubepods.slice", true},
		{"/kubepods.slice/kubepods-besteffort.slice", true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice", true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", true}, // crun's "container" in it
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice/crio-" + testCID + ".scope/container", false},
		// cgroupfs
		{"/kubepods", true},
		{"/kubepods/besteffort", true},
		{"/kubepods/burstable/pod" + testUID, true},
		{"/kubepods/burstable/pod" + testUID + "/" + testCID, true},
		// not Kubernetes
		{"/system.slice", false},
		{"/system.slice/besteffort", false},
	} {
		ref, _ := ParseCgroupPath(c.dir)
		assert.Equal(t, c.want, bornIn(c.dir, ref), c.dir)
	}
}
