package k8smeta

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTransformLocalPod(t *testing.T) {
	in := fullPod(7)
	in.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "debug", ContainerID: "cri-o://eph"}}
	in.Status.ContainerStatuses = append(in.Status.ContainerStatuses, corev1.ContainerStatus{Name: "pending"}) // not started: no ID
	// Restarted: the instance before it still names its sockets.
	in.Status.ContainerStatuses[1].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://before"}
	obj, err := transformLocalPod(in)
	require.NoError(t, err)
	p := obj.(*localPod)

	assert.Equal(t, strippedMeta(&in.ObjectMeta), p.ObjectMeta, "labels, annotations, owners and managed fields dropped")
	assert.Equal(t, Pod{
		Name: in.Name, Namespace: "shop", UID: string(in.UID), Workload: "web",
		Containers: map[string]string{
			in.Status.InitContainerStatuses[0].ContainerID[len("containerd://"):]: "init",
			in.Status.ContainerStatuses[0].ContainerID[len("containerd://"):]:     "web",
			in.Status.ContainerStatuses[1].ContainerID[len("containerd://"):]:     "sidecar",
			"before": "sidecar",
			"eph":    "debug",
		},
	}, p.pod(false))

	again, err := transformLocalPod(p)
	require.NoError(t, err)
	assert.Same(t, p, again, "idempotent")
}

// A mirror pod is indexed by the kubelet's UID of its static pod too (its cgroups carry that
// one); other pods, and annotations no cgroup path could carry, by their metadata.uid only.
func TestLocalPodMirrorUID(t *testing.T) {
	const hash = "6bf2e4b1c0a94d8e9f3a2b1c0d9e8f7a"
	for name, c := range map[string]struct {
		annotations map[string]string
		want        []string // index keys after the metadata.uid
	}{
		"mirror pod":               {map[string]string{"kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash}, []string{hash}},
		"plain pod":                {nil, nil},
		"config.hash alone":        {map[string]string{"kubernetes.io/config.hash": hash}, nil},
		"mirror of its own uid":    {map[string]string{"kubernetes.io/config.mirror": "00000000-0000-4000-8000-000000000007"}, nil},
		"longer than any pod UID":  {map[string]string{"kubernetes.io/config.mirror": strings.Repeat("a", 37)}, nil},
		"UUID set by the manifest": {map[string]string{"kubernetes.io/config.mirror": "11111111-2222-4333-8444-555555555555"}, []string{"11111111-2222-4333-8444-555555555555"}},
	} {
		t.Run(name, func(t *testing.T) {
			in := fullPod(7)
			in.Annotations = c.annotations
			obj, err := transformLocalPod(in)
			require.NoError(t, err)
			keys, err := podUID(obj)
			require.NoError(t, err)
			assert.Equal(t, append([]string{string(in.UID)}, c.want...), keys)
			assert.Equal(t, string(in.UID), obj.(*localPod).pod(false).UID, "named with the API's UID")
			assert.Equal(t, obj, obj.(*localPod).DeepCopyObject(), "copied whole")
		})
	}
}

func TestTransformPeerPod(t *testing.T) {
	dual := fullPod(1)
	dual.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.2"}, {IP: "fd00:0:0::0:2"}}
	onlyPodIP := fullPod(2)
	onlyPodIP.Status.PodIPs = nil
	hostNet := fullPod(3)
	hostNet.Spec.HostNetwork = true
	done := fullPod(4)
	done.Status.Phase = corev1.PodSucceeded
	failed := fullPod(5)
	failed.Status.Phase = corev1.PodFailed
	pending := fullPod(6)
	pending.Status.PodIP, pending.Status.PodIPs = "", nil

	for name, c := range map[string]struct {
		pod  *corev1.Pod
		want []string
	}{
		"dual-stack, IPv6 canonicalised": {dual, []string{"10.244.0.2", "fd00::2"}},
		"podIP only (old API server)":    {onlyPodIP, []string{"10.244.0.3"}},
		"hostNetwork: the node's IP":     {hostNet, nil},
		"succeeded: IP may be reused":    {done, nil},
		"failed: IP may be reused":       {failed, nil},
		"no IP yet":                      {pending, nil},
	} {
		t.Run(name, func(t *testing.T) {
			obj, err := transformPeerPod(c.pod)
			require.NoError(t, err)
			a := obj.(*addressOwner)
			assert.Equal(t, c.pod.Name, a.Name)
			assert.Equal(t, c.pod.UID, a.UID)
			keys, err := addressIndex(a)
			require.NoError(t, err)
			assert.Equal(t, c.want, keys)
			again, err := transformPeerPod(a)
			require.NoError(t, err)
			assert.Same(t, a, again, "idempotent")
		})
	}
}

func TestTransformService(t *testing.T) {
	svc := func(clusterIP string, clusterIPs ...string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop", UID: "svc-uid", Labels: map[string]string{"a": "b"}},
			Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, ClusterIPs: clusterIPs, Selector: map[string]string{"app": "api"}},
		}
	}
	for name, c := range map[string]struct {
		svc  *corev1.Service
		want []string
	}{
		"single":                   {svc("10.96.0.10", "10.96.0.10"), []string{"10.96.0.10"}},
		"dual-stack":               {svc("10.96.0.10", "10.96.0.10", "fd00:10:96::a"), []string{"10.96.0.10", "fd00:10:96::a"}},
		"clusterIP only (old API)": {svc("10.96.0.11"), []string{"10.96.0.11"}},
		"headless":                 {svc("None", "None"), nil},
		"ExternalName":             {svc(""), nil},
	} {
		t.Run(name, func(t *testing.T) {
			obj, err := transformService(c.svc)
			require.NoError(t, err)
			a := obj.(*addressOwner)
			assert.Equal(t, metav1.ObjectMeta{Name: "api", Namespace: "shop", UID: "svc-uid"}, a.ObjectMeta)
			keys, err := addressIndex(a)
			require.NoError(t, err)
			assert.Equal(t, c.want, keys)
		})
	}
}

func TestBareContainerID(t *testing.T) {
	assert.Equal(t, "abc", bareContainerID("containerd://abc"))
	assert.Equal(t, "abc", bareContainerID("docker://abc"))
	assert.Equal(t, "abc", bareContainerID("abc"))
	assert.Empty(t, bareContainerID(""))
}

func TestDeepCopyObject(t *testing.T) {
	a := &addressOwner{ObjectMeta: metav1.ObjectMeta{Name: "p"}, ips: []string{"10.0.0.1"}}
	c := a.DeepCopyObject().(*addressOwner)
	c.ips[0] = "changed"
	assert.Equal(t, "10.0.0.1", a.ips[0])

	l := &localPod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, containers: []container{{"id", "c"}}}
	lc := l.DeepCopyObject().(*localPod)
	lc.containers[0].name = "changed"
	assert.Equal(t, "c", l.containers[0].name)

	sl := &serviceSlice{ObjectMeta: metav1.ObjectMeta{Name: "s", Labels: map[string]string{"a": "b"}}, service: "api", ready: 2}
	sc := sl.DeepCopyObject().(*serviceSlice)
	sc.Labels["a"] = "changed"
	assert.Equal(t, "b", sl.Labels["a"])
	assert.Equal(t, "api", sc.service)
	assert.Equal(t, 2, sc.ready)
}
