package procscan

import "strings"

// ParseCgroupPath finds the pod and container in a cgroup path as the kubelet and the
// container runtimes lay it out, under either cgroup driver and either cgroup version:
//
//	systemd:  .../kubepods[-<qos>]-pod<uid_with_underscores>.slice/<runtime-prefix><id>.scope
//	cgroupfs: .../kubepods[/<qos>]/pod<uid>/[<runtime-prefix>]<id>
//
// Anything may precede the pod level (a kubelet cgroupRoot, a kind node's own container) and
// follow the container level (crun's "container" sub-cgroup). The innermost pod wins, so a
// kubelet nested in a pod (kind on Kubernetes) attributes to its own pods. ok is false when
// the path holds no pod.
func ParseCgroupPath(path string) (ref Ref, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		uid, isPod := podSegment(segs, i)
		if !isPod {
			continue
		}
		ref.PodUID = uid
		if i+1 < len(segs) {
			ref.ContainerID, ref.Runtime, _ = containerSegment(segs[i+1])
		}
		return ref, true
	}
	return Ref{}, false
}

// podSegment reports whether segs[i] is a pod-level cgroup and returns its UID.
func podSegment(segs []string, i int) (uid string, ok bool) {
	seg := segs[i]
	if name, isSlice := strings.CutSuffix(seg, ".slice"); isSlice {
		// systemd driver: the slice name spells its ancestry ("kubepods-burstable-pod…",
		// "kubelet-kubepods-pod…" with cgroupRoot /kubelet), and systemd reserves "-" as
		// the hierarchy separator, so the kubelet writes the UID's dashes as underscores.
		at := strings.LastIndex(name, "-pod")
		if at < 0 || !strings.Contains(name[:at], "kubepods") {
			return "", false
		}
		uid = strings.ReplaceAll(name[at+len("-pod"):], "_", "-")
		return uid, validPodUID(uid)
	}
	// cgroupfs driver: pod<uid> directly under kubepods or under kubepods/<qos>. Read from a
	// private cgroup namespace (podnet in a pod of its own: containerd's and CRI-O's default on
	// cgroup v2), other pods' paths are relative to podnet's own cgroup, "/../../pod<uid>/<id>":
	// a ".." above the pod stands for the ancestors podnet cannot see (found by an independent
	// check: no process was ever put in a pod there, and lookups by namespace named none).
	uid, found := strings.CutPrefix(seg, "pod")
	if !found || !validPodUID(uid) || i == 0 {
		return "", false
	}
	parent := segs[i-1]
	if parent == "burstable" || parent == "besteffort" {
		if i < 2 {
			return "", false
		}
		parent = segs[i-2]
	}
	return uid, parent == "kubepods" || parent == ".."
}

// containerPrefixes are the cgroup name prefixes each runtime gives a container, under both
// drivers: "cri-containerd-<id>.scope" (containerd systemd), "crio-<id>.scope" or
// "crio-<id>" (CRI-O systemd/cgroupfs), "docker-<id>.scope" (dockerd/cri-dockerd systemd).
var containerPrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
}

// containerSegment returns the container id named by a cgroup directory directly below a
// pod. CRI-O's "crio-conmon-<id>.scope" (the monitor process) fails the id check, which
// leaves it attributed to the pod only.
func containerSegment(seg string) (id string, rt Runtime, ok bool) {
	name := strings.TrimSuffix(seg, ".scope")
	for _, p := range containerPrefixes {
		if rest, found := strings.CutPrefix(name, p.prefix); found && validContainerID(rest) {
			return rest, p.runtime, true
		}
	}
	// cgroupfs driver with containerd or cri-dockerd: the bare id, no runtime hint.
	if validContainerID(name) {
		return name, RuntimeUnknown, true
	}
	return "", RuntimeUnknown, false
}

// validContainerID accepts the 64-hex-digit ids all CRI runtimes generate; anything else
// below a pod (conmon, runtime helpers) is not a container.
func validContainerID(s string) bool {
	return len(s) == 64 && isHex(s)
}

// validPodUID accepts an API-server UID (RFC 4122 text form) and a static pod's UID, which
// the kubelet derives from a hash of the manifest as 32 hex digits.
func validPodUID(s string) bool {
	switch len(s) {
	case 32:
		return isHex(s)
	case 36:
		for i := 0; i < len(s); i++ {
			dash := i == 8 || i == 13 || i == 18 || i == 23
			if dash != (s[i] == '-') || (!dash && !isHexDigit(s[i])) {
				return false
			}
		}
		return true
	}
	return false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
