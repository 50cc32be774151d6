package procscan

// Runtime names the container runtime that created a cgroup. The values are the schemes of
// Kubernetes' ContainerStatus.containerID ("containerd://<id>"), so a Ref can be matched
// against pod status without translation.
type Runtime string

const (
	// RuntimeUnknown is a container whose cgroup name carries no runtime: the cgroupfs driver
	// names containerd and cri-dockerd containers by bare id.
	RuntimeUnknown    Runtime = ""
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
)

// Ref is the workload a socket belongs to. PodUID is empty when the socket belongs to no
// pod; ContainerID is empty for pod-level cgroups and for attributions made by network
// namespace, which all containers of a pod share.
type Ref struct {
	PodUID      string
	ContainerID string
	Runtime     Runtime
}
