package k8smeta

import (
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// workloadOf names the workload a pod belongs to, from its controller: a pod's name carries
// suffixes Kubernetes generated, but not in a shape that can be undone (the API server cuts a
// generateName base to 58 characters and appends 5 characters with no dash, so a long
// Deployment's pods share no name prefix ending in a dash; and a bare pod's last segment may look
// generated). Computed once by the transforms, which keep no owner objects.
//   - a ReplicaSet: its name less "-" and the pod's pod-template-hash (a Deployment's name);
//   - a Job: its name less the "-<minutes since the epoch>" a CronJob appends to each run, so
//     that every run is one workload;
//   - any other controller (DaemonSet, StatefulSet, a custom one): its name;
//   - no controller: the pod's own name, exactly.
func workloadOf(pod *corev1.Pod) unique.Handle[string] {
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return unique.Make(pod.Name)
	}
	group := schema.FromAPIVersionAndKind(owner.APIVersion, owner.Kind).Group
	switch {
	case group == "apps" && owner.Kind == "ReplicaSet":
		if hash := pod.Labels["pod-template-hash"]; hash != "" {
			if base, ok := strings.CutSuffix(owner.Name, "-"+hash); ok && base != "" {
				return unique.Make(base)
			}
		}
	case group == "batch" && owner.Kind == "Job":
		if i := strings.LastIndexByte(owner.Name, '-'); i > 0 && scheduledTime(owner.Name[i+1:]) {
			return unique.Make(owner.Name[:i])
		}
	}
	return unique.Make(owner.Name)
}

// scheduledTime says whether s is the suffix a CronJob gives each Job it makes: the scheduled
// time in minutes since the epoch, in decimal (8 digits until the 22nd century).
func scheduledTime(s string) bool {
	if len(s) < 8 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// workloadName is a workload's name; "" for the zero handle (an object that is no pod).
func workloadName(h unique.Handle[string]) string {
	if h == (unique.Handle[string]{}) {
		return ""
	}
	return h.Value()
}
