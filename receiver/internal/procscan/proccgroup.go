package procscan

import "bytes"

// procCgroup is what one /proc/<pid>/cgroup file says about its process.
type procCgroup struct {
	// v2Ref is the pod in the unified hierarchy ("0::<path>").
	v2Ref   Ref
	v2InPod bool
	// v1Ref is the first pod found in a v1 hierarchy: on a hybrid host with the cgroupfs
	// driver the kubelet may place containers only in v1 hierarchies, leaving the v2 path
	// at the runtime's service, which must not be mistaken for the pod.
	v1Ref   Ref
	v1InPod bool
}

// pod is the process's pod, preferring the unified hierarchy.
func (pc procCgroup) pod() (Ref, bool) {
	if pc.v2InPod {
		return pc.v2Ref, true
	}
	return pc.v1Ref, pc.v1InPod
}

// parseProcCgroup reads /proc/<pid>/cgroup: one "hierarchy-id:controllers:path" line per
// hierarchy, where the unified hierarchy is "0::path". Paths may contain ':', so only the
// first two separate fields. Malformed lines are skipped.
func parseProcCgroup(data []byte) procCgroup {
	var pc procCgroup
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		controllers, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || len(path) == 0 {
			continue
		}
		switch {
		case string(id) == "0" && len(controllers) == 0:
			pc.v2Ref, pc.v2InPod = ParseCgroupPath(string(path))
		case !pc.v1InPod:
			pc.v1Ref, pc.v1InPod = ParseCgroupPath(string(path))
		}
	}
	return pc
}
