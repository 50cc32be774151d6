package procscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testUID = "8d6b4a5e-3f1c-4b7e-9a2d-1c0e5f6a7b8c"
	// The systemd driver escapes a UID's dashes as underscores (kubelet
	// pkg/kubelet/cm/cgroup_manager_linux.go, escapeSystemdCgroupName).
	testUIDSystemd = "8d6b4a5e_3f1c_4b7e_9a2d_1c0e5f6a7b8c"
	// A static pod's UID is the kubelet's hash of its manifest (pkg/kubelet/config, 32 hex).
	testStaticUID = "6b2a1e2e0f1f4d0c9a0d7e3a1b2c3d4e"
	testCID       = "4f1d0c8f5a0b6e2c9d3a7b1e8f0c2d4a6b8e0f1a3c5d7e9b2a4c6e8f0a1b3c5d"
	testCID2      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseCgroupPath(t *testing.T) {
	sd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDSystemd + ".slice"
	tests := []struct {
		name, path string
		want       Ref
		ok         bool
	}{
		// containerd's CRI plugin passes the systemd parent "kubepods-…slice:cri-containerd:<id>"
		// to runc, which names the unit cri-containerd-<id>.scope; v1 and v2 paths are equal.
		{"containerd systemd burstable", sd + "/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		{"containerd systemd besteffort", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// Guaranteed pods sit directly under kubepods, with no QoS slice.
		{"containerd systemd guaranteed", "/kubepods.slice/kubepods-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// Static pods (kube-apiserver, etcd on control-plane nodes) have hash UIDs.
		{"static pod", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testStaticUID + ".slice/cri-containerd-" + testCID + ".scope", Ref{testStaticUID, testCID, RuntimeContainerd}, true},
		// CRI-O internal/config/cgmgr/systemd.go: "crio-<id>.scope", and "crio-conmon-<id>.scope"
		// for the monitor process, which belongs to the pod but is no container.
		{"cri-o systemd", sd + "/crio-" + testCID + ".scope", Ref{testUID, testCID, RuntimeCRIO}, true},
		{"cri-o conmon", sd + "/crio-conmon-" + testCID + ".scope", Ref{PodUID: testUID}, true},
		// crun on cgroup v2 moves the payload into a "container" sub-cgroup of the scope.
		{"cri-o crun nested", sd + "/crio-" + testCID + ".scope/container", Ref{testUID, testCID, RuntimeCRIO}, true},
		// dockerd (through cri-dockerd or dockershim) with the systemd driver: docker-<id>.scope.
		{"docker systemd", sd + "/docker-" + testCID + ".scope", Ref{testUID, testCID, RuntimeDocker}, true},
		// Pod-level cgroup: the kubelet's own, holding no process unless a runtime puts the
		// sandbox there; it names the pod only.
		{"pod level systemd", sd, Ref{PodUID: testUID}, true},
		// cgroupfs driver (kubelet cgroup_manager_linux.go, cgroupfs names): kubepods/<qos>/pod<uid>,
		// containerd and cri-dockerd name the container by bare id, CRI-O by crio-<id>.
		{"containerd cgroupfs burstable", "/kubepods/burstable/pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		{"containerd cgroupfs besteffort", "/kubepods/besteffort/pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		{"cgroupfs guaranteed", "/kubepods/pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		{"cri-o cgroupfs", "/kubepods/besteffort/pod" + testUID + "/crio-" + testCID, Ref{testUID, testCID, RuntimeCRIO}, true},
		{"pod level cgroupfs", "/kubepods/burstable/pod" + testUID, Ref{PodUID: testUID}, true},
		// kubelet cgroupRoot inside another cgroup (this project's single-node lab, cgroupfs).
		{"cgroupfs under cgroupRoot", "/process_api/7c80f0e86e014baae153f4dfd0147c11/kubepods/burstable/pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		// systemd driver with cgroupRoot /custom: every slice name carries the prefix.
		{"systemd under cgroupRoot", "/custom.slice/custom-kubepods.slice/custom-kubepods-besteffort.slice/custom-kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// kind runs its kubelet with cgroupRoot /kubelet, inside the node's docker container;
		// the node container's own docker-<id>.scope must not be taken for the container.
		{"kind inside node", "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		{"kind seen from host", "/system.slice/docker-" + testCID2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// A kubelet running in a pod (kind on Kubernetes): the innermost pod owns the process.
		{"nested kubelet", "/kubepods/burstable/pod" + testStaticUID + "/" + testCID2 + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// Read from a private cgroup namespace, other cgroups show as /../…
		{"other cgroup namespace", "/../../kubepods.slice/kubepods-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope", Ref{testUID, testCID, RuntimeContainerd}, true},
		// ...and under the cgroupfs driver, where no slice name spells its ancestry: a pod of
		// podnet's QoS class, and one of another (found by an independent check: no pod).
		{"other cgroup namespace, cgroupfs", "/../../pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		{"other cgroup namespace, cgroupfs, other QoS", "/../../../burstable/pod" + testUID + "/" + testCID, Ref{testUID, testCID, RuntimeUnknown}, true},
		{"not a pod above ..", "/../pods/pod" + testUID, Ref{}, false},
		{"root", "/", Ref{}, false},
		{"empty", "", Ref{}, false},
		{"host service", "/system.slice/containerd.service", Ref{}, false},
		{"session", "/user.slice/user-0.slice/session-1.scope", Ref{}, false},
		{"plain docker cgroupfs", "/docker/" + testCID, Ref{}, false},
		{"plain docker systemd", "/system.slice/docker-" + testCID + ".scope", Ref{}, false},
		{"kubepods top", "/kubepods.slice", Ref{}, false},
		{"qos level", "/kubepods/burstable", Ref{}, false},
		{"pod dir outside kubepods", "/foo/pod" + testUID + "/" + testCID, Ref{}, false},
		{"pod under unknown qos", "/kubepods/other/pod" + testUID, Ref{}, false},
		{"bad uid systemd", "/kubepods.slice/kubepods-podnotauid.slice", Ref{}, false},
		{"slice not under kubepods", "/machine.slice/machine-pod" + testUIDSystemd + ".slice", Ref{}, false},
		{"short container id", sd + "/cri-containerd-abc123.scope", Ref{PodUID: testUID}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCgroupPath(tt.path)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	systemdPath := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope"
	cgroupfsPath := "/kubepods/burstable/pod" + testUID + "/" + testCID
	want := Ref{testUID, testCID, RuntimeContainerd}
	tests := []struct {
		name, file string
		v2Ref      Ref
		pod        Ref
		inPod      bool
	}{
		{"v2 only", "0::" + systemdPath + "\n", want, want, true},
		// Hybrid host, systemd driver: systemd mirrors the unit into the unified hierarchy.
		{"hybrid systemd", "12:memory:" + systemdPath + "\n1:name=systemd:" + systemdPath + "\n0::" + systemdPath + "\n", want, want, true},
		// Hybrid host, cgroupfs driver: containers only in v1; the v2 cgroup is the runtime's
		// service and must not be attributed to the pod.
		{"hybrid cgroupfs", "4:memory:" + cgroupfsPath + "\n3:cpu,cpuacct:" + cgroupfsPath + "\n1:name=systemd:/system.slice/containerd.service\n0::/system.slice/containerd.service\n", Ref{}, Ref{PodUID: testUID, ContainerID: testCID}, true},
		{"v1 only", "4:memory:" + cgroupfsPath + "\n1:name=systemd:/system.slice/containerd.service\n", Ref{}, Ref{PodUID: testUID, ContainerID: testCID}, true},
		{"host process", "0::/system.slice/sshd.service\n", Ref{}, Ref{}, false},
		{"colon in path", "0::/a:b\n", Ref{}, Ref{}, false},
		{"malformed lines", "garbage\n1:x\n0::\n\n0::/ok", Ref{}, Ref{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := parseProcCgroup([]byte(tt.file))
			assert.Equal(t, tt.v2Ref, pc.v2Ref)
			pod, inPod := pc.pod()
			assert.Equal(t, tt.inPod, inPod)
			assert.Equal(t, tt.pod, pod)
		})
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDSystemd + ".slice/cri-containerd-" + testCID + ".scope")
	f.Add("/kubepods/pod" + testUID + "/" + testCID)
	f.Add("/kubepods/besteffort/pod" + testUID)
	f.Add("pod" + testUID)
	f.Add("/-pod.slice")
	f.Fuzz(func(t *testing.T, path string) {
		ref, ok := ParseCgroupPath(path)
		if !ok {
			if ref != (Ref{}) {
				t.Fatalf("%q: no pod but %+v", path, ref)
			}
			return
		}
		if !validPodUID(ref.PodUID) {
			t.Fatalf("%q: invalid pod UID %q", path, ref.PodUID)
		}
		if ref.ContainerID != "" && !validContainerID(ref.ContainerID) {
			t.Fatalf("%q: invalid container id %q", path, ref.ContainerID)
		}
		if !strings.Contains(path, "pod") {
			t.Fatalf("%q: pod found in a path without one", path)
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("12:memory:/kubepods/burstable/pod" + testUID + "/" + testCID + "\n0::/system.slice/containerd.service\n"))
	f.Add([]byte("0::/kubepods.slice/kubepods-pod" + testUIDSystemd + ".slice/crio-" + testCID + ".scope\n"))
	f.Add([]byte("0::\n::\n:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pc := parseProcCgroup(data)
		if pod, inPod := pc.pod(); !inPod && pod != (Ref{}) {
			t.Fatalf("no pod but %+v", pod)
		}
	})
}

// A cgroup_root that is no cgroup2 mount (a hybrid host's unmounted unified hierarchy) is told
// the fix, not only the path that failed (found by an independent check).
func TestACgroupRootThatIsNoCgroup2MountIsToldTheFix(t *testing.T) {
	dir := t.TempDir() // any file system but cgroup2
	_, err := detectCgroupFS("/proc", dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set cgroup_root to where the host's cgroup2 hierarchy is mounted")
	assert.Contains(t, err.Error(), "mount -t cgroup2 none "+dir)
}
