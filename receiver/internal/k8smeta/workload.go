package k8smeta

import (
	"strings"
	"time"
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
//     that every run is one workload; only where that minute can be the run's schedule (the
//     pod's own time, podnet watches no Jobs): a Job named migrate-20261206 by hand is its own;
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
		if i := strings.LastIndexByte(owner.Name, '-'); i > 0 && scheduledTime(owner.Name[i+1:], pod.CreationTimestamp.Time) {
			return unique.Make(owner.Name[:i])
		}
	}
	return unique.Make(owner.Name)
}

// scheduledTime says whether s is the suffix a CronJob gives each Job it makes: the scheduled
// time in minutes since the epoch, in decimal (8 digits until the 22nd century), at most
// maxRunAge before the pod was created (a Job's pods come at or after its schedule: a run
// started late, retried or resumed from suspension) and not after it, but for clock skew. A
// digit suffix outside that (a date, a build number: found by an independent check, a Job named
// migrate-20261206 was "migrate") is the Job's own. With no creation time, digits alone decide.
func scheduledTime(s string, created time.Time) bool {
	if len(s) < 8 || len(s) > 10 {
		return false
	}
	minute := int64(0)
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		minute = minute*10 + int64(s[i]-'0')
	}
	if created.IsZero() {
		return true
	}
	scheduled := time.Unix(minute*60, 0)
	return !scheduled.After(created.Add(maxClockSkew)) && created.Sub(scheduled) <= maxRunAge
}

// maxRunAge is how long after its schedule a CronJob's run may still create pods and be
// recognised as that CronJob's; maxClockSkew how far the controller's clock may lead the API
// server's.
const (
	maxRunAge    = 90 * 24 * time.Hour
	maxClockSkew = 10 * time.Minute
)

// workloadName is a workload's name; "" for the zero handle (an object that is no pod).
func workloadName(h unique.Handle[string]) string {
	if h == (unique.Handle[string]{}) {
		return ""
	}
	return h.Value()
}
