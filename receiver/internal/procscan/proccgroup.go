package procscan

import "bytes"

// procCgroup is what one /proc/<pid>/cgroup file says about its process.
type procCgroup struct {
	// v2Path is the process's cgroup in the unified hierarchy ("0::<path>"); the kernel's
	// socket cgroup id refers to this one. Empty on a cgroup v1-only host.
	v2Path string
	// ref is the pod and container, from the v2 path when it names a pod, otherwise from any
	// v1 hierarchy: on a hybrid host with the cgroupfs driver the kubelet places containers
	// only in v1 hierarchies, and the v2 path is the runtime's service.
	ref   Ref
	inPod bool
}

// parseProcCgroup reads /proc/<pid>/cgroup: one "hierarchy-id:controllers:path" line per
// hierarchy, where the unified hierarchy is "0::path". Paths may contain ':', so only the
// first two separate fields. Malformed lines are skipped.
func parseProcCgroup(data []byte) procCgroup {
	var pc procCgroup
	var v1Ref Ref
	var v1InPod bool
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
		if string(id) == "0" && len(controllers) == 0 {
			pc.v2Path = string(path)
			pc.ref, pc.inPod = ParseCgroupPath(pc.v2Path)
			continue
		}
		if !v1InPod {
			v1Ref, v1InPod = ParseCgroupPath(string(path))
		}
	}
	if !pc.inPod && v1InPod {
		pc.ref, pc.inPod = v1Ref, true
	}
	return pc
}
