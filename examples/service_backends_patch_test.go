package examples

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/podnet/podnet/internal/kubetest"
	"github.com/podnet/podnet/internal/netnstest"
)

// The service_backends patch, applied by a real API server to the DaemonSet of daemonset.yaml
// as `kubectl patch --patch-file` would (strategic merge), adds host networking and NET_ADMIN
// and keeps everything the least-privilege DaemonSet has.
func TestServiceBackendsPatchKeepsTheDaemonSet(t *testing.T) {
	netnstest.RequireRoot(t)
	cluster := kubetest.Start(t)
	cluster.Namespace(t, "podnet")
	api := cluster.Admin.AppsV1().DaemonSets("podnet")
	ds, err := api.Create(context.Background(), daemonSet(t), metav1.CreateOptions{}) // as defaulted
	require.NoError(t, err)

	patch, err := os.ReadFile("kubernetes/service-backends.patch.yaml")
	require.NoError(t, err)
	patchJSON, err := yaml.YAMLToJSON(patch)
	require.NoError(t, err)
	got, err := api.Patch(context.Background(), ds.Name, types.StrategicMergePatchType, patchJSON, metav1.PatchOptions{})
	require.NoError(t, err)

	spec := got.Spec.Template.Spec
	assert.True(t, spec.HostNetwork)
	assert.Equal(t, corev1.DNSClusterFirstWithHostNet, spec.DNSPolicy)
	assert.True(t, spec.HostPID, "kept")
	require.Len(t, spec.Containers, 1, "the container is patched, not added")
	c, before := spec.Containers[0], ds.Spec.Template.Spec.Containers[0]
	caps := c.SecurityContext.Capabilities
	assert.Contains(t, caps.Add, corev1.Capability("NET_ADMIN"))
	for _, keep := range before.SecurityContext.Capabilities.Add {
		assert.Contains(t, caps.Add, keep, "the default capabilities stay")
	}
	assert.Equal(t, []corev1.Capability{"ALL"}, caps.Drop)
	assert.False(t, *c.SecurityContext.Privileged)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.Equal(t, before.VolumeMounts, c.VolumeMounts)
	assert.Equal(t, before.Env, c.Env)
	assert.Len(t, spec.Volumes, len(ds.Spec.Template.Spec.Volumes))
	assert.False(t, slices.Contains(before.SecurityContext.Capabilities.Add, "NET_ADMIN"), "the default DaemonSet has no NET_ADMIN")
}

// daemonSet is the DaemonSet document of kubernetes/daemonset.yaml.
func daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	b, err := os.ReadFile("kubernetes/daemonset.yaml")
	require.NoError(t, err)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var doc struct {
			Kind string `json:"kind"`
		}
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("no DaemonSet in daemonset.yaml: %v", err)
		}
		j, err := yaml.Marshal(raw)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(j, &doc))
		if doc.Kind != "DaemonSet" {
			continue
		}
		var ds appsv1.DaemonSet
		require.NoError(t, yaml.Unmarshal(j, &ds))
		return &ds
	}
}
