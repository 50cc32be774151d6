package k8smeta

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A pod's workload comes from its controller, not from the shape of its name (found by an
// independent check: a long Deployment's pods, whose generated suffix has no dash, were each a
// workload of their own, and a bare pod named proxy-https became "proxy").
func TestWorkloadOf(t *testing.T) {
	owned := func(name, apiVersion, kind, owner, hash string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if hash != "" {
			p.Labels = map[string]string{"pod-template-hash": hash}
		}
		if owner != "" {
			p.OwnerReferences = []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "ConfigMap", Name: "not-a-controller"},
				{APIVersion: apiVersion, Kind: kind, Name: owner, Controller: new(true)},
			}
		}
		return p
	}
	// A CronJob's run is named after its schedule's minute: 29412345 is 2025-12-03 11:45 UTC.
	schedule := time.Unix(29412345*60, 0)
	createdAt := func(p *corev1.Pod, at time.Time) *corev1.Pod {
		p.CreationTimestamp = metav1.NewTime(at)
		return p
	}
	run := func() *corev1.Pod { return owned("backup-29412345-x7k2p", "batch/v1", "Job", "backup-29412345", "") }
	for name, c := range map[string]struct {
		pod  *corev1.Pod
		want string
	}{
		"Deployment":                        {owned("web-6d4cf56db6-x7k2p", "apps/v1", "ReplicaSet", "web-6d4cf56db6", "6d4cf56db6"), "web"},
		"Deployment, name cut to 58 chars":  {owned("payments-reconciliation-ledger-exporter-secondary-5b8d9c7fmp8c5", "apps/v1", "ReplicaSet", "payments-reconciliation-ledger-exporter-secondary-5b8d9c7f", "5b8d9c7f"), "payments-reconciliation-ledger-exporter-secondary"},
		"ReplicaSet of its own":             {owned("cache-x7k2p", "apps/v1", "ReplicaSet", "cache", ""), "cache"},
		"ReplicaSet not ending in the hash": {owned("cache-x7k2p", "apps/v1", "ReplicaSet", "cache", "6d4cf56db6"), "cache"},
		"ReplicaSet named only the hash":    {owned("x-x7k2p", "apps/v1", "ReplicaSet", "-6d4cf56db6", "6d4cf56db6"), "-6d4cf56db6"},
		"another group's ReplicaSet":        {owned("web-6d4cf56db6-x7k2p", "example.com/v1", "ReplicaSet", "web-6d4cf56db6", "6d4cf56db6"), "web-6d4cf56db6"},
		"CronJob's run":                     {owned("backup-29412345-x7k2p", "batch/v1", "Job", "backup-29412345", ""), "backup"},
		"Job with a number of its own":      {owned("migrate-2024-x7k2p", "batch/v1", "Job", "migrate-2024", ""), "migrate-2024"},
		"CronJob's run, its pod at once":    {createdAt(run(), schedule.Add(40*time.Second)), "backup"},
		"CronJob's run, retried for weeks":  {createdAt(run(), schedule.Add(60*24*time.Hour)), "backup"},
		"CronJob's run, controller ahead":   {createdAt(run(), schedule.Add(-2*time.Minute)), "backup"},
		"Job named by a date":               {createdAt(owned("migrate-20261206-x7k2p", "batch/v1", "Job", "migrate-20261206", ""), time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)), "migrate-20261206"},
		"Job numbered after its pod":        {createdAt(run(), schedule.Add(-time.Hour)), "backup-29412345"},
		"Job numbered long before its pod":  {createdAt(run(), schedule.Add(100*24*time.Hour)), "backup-29412345"},
		"Job":                               {owned("migrate-x7k2p", "batch/v1", "Job", "migrate", ""), "migrate"},
		"DaemonSet":                         {owned("fluent-bit-x7k2p", "apps/v1", "DaemonSet", "fluent-bit", ""), "fluent-bit"},
		"StatefulSet":                       {owned("db-0", "apps/v1", "StatefulSet", "db", ""), "db"},
		"custom controller":                 {owned("canary-6d4cf56db6-x7k2p", "argoproj.io/v1alpha1", "Rollout", "canary", ""), "canary"},
		"bare pod that looks generated":     {owned("proxy-https", "", "", "", ""), "proxy-https"},
		"bare pod with a hash-like name":    {owned("web-6d4cf56db6-x7k2p", "", "", "", "6d4cf56db6"), "web-6d4cf56db6-x7k2p"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, c.want, workloadName(workloadOf(c.pod)))
			local, err := transformLocalPod(c.pod)
			require.NoError(t, err)
			assert.Equal(t, c.want, local.(*localPod).pod(false).Workload, "local pods")
			peer, err := transformPeerPod(c.pod)
			require.NoError(t, err)
			assert.Equal(t, c.want, ownerHolders(PeerPod)(withIP(peer.(*addressOwner)))[0].owner.Workload, "peer pods")
		})
	}
	assert.Equal(t, workloadOf(fullPod(1)), workloadOf(fullPod(2)), "one interned name per workload")
	assert.Empty(t, workloadName(transformedService(t).workload), "a Service is no workload")
}

func withIP(a *addressOwner) *addressOwner {
	a.ips = []string{"10.244.0.9"}
	return a
}

func transformedService(t *testing.T) *addressOwner {
	obj, err := transformService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api"}})
	require.NoError(t, err)
	return obj.(*addressOwner)
}

// Every pod, hostNetwork and finished ones too, is indexed by its node's addresses: how the
// server end of a connection tells a client at a node's address (a hostNetwork pod, a node's
// process, a pod's traffic masqueraded to its node's address) from one outside the cluster.
func TestHostIPKeys(t *testing.T) {
	dual := fullPod(1)
	dual.Status.HostIP, dual.Status.HostIPs = "172.23.0.2", []corev1.HostIP{{IP: "172.23.0.2"}, {IP: "fd00:0:0::0:2"}}
	old := fullPod(2)
	old.Status.HostIP, old.Status.HostIPs = "172.23.0.3", nil
	hostNet := fullPod(3)
	hostNet.Spec.HostNetwork, hostNet.Status.HostIPs = true, []corev1.HostIP{{IP: "172.23.0.4"}}
	done := fullPod(4)
	done.Status.Phase, done.Status.HostIPs = corev1.PodSucceeded, []corev1.HostIP{{IP: "172.23.0.5"}}
	unscheduled := fullPod(5)
	unscheduled.Status.HostIP, unscheduled.Status.HostIPs = "", nil
	for name, c := range map[string]struct {
		pod  *corev1.Pod
		want []string
	}{
		"dual-stack, IPv6 canonicalised": {dual, []string{"172.23.0.2", "fd00::2"}},
		"hostIP only (old API server)":   {old, []string{"172.23.0.3"}},
		"hostNetwork":                    {hostNet, []string{"172.23.0.4"}},
		"finished":                       {done, []string{"172.23.0.5"}},
		"not scheduled yet":              {unscheduled, nil},
	} {
		t.Run(name, func(t *testing.T) {
			for _, transform := range []func(any) (any, error){transformPeerPod, transformLocalPod} {
				obj, err := transform(c.pod)
				require.NoError(t, err)
				keys, err := hostIPKeys(obj)
				require.NoError(t, err)
				assert.Equal(t, c.want, keys)
				assert.Equal(t, obj, obj.(interface{ DeepCopyObject() runtime.Object }).DeepCopyObject(), "copied whole")
			}
		})
	}
}
