package podnetreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWorkloadOf(t *testing.T) {
	for pod, want := range map[string]string{
		"web-6d4cf56db6-x7k2p":   "web",            // Deployment: ReplicaSet hash and pod suffix
		"my-api-5c9f7b8d4-qz2lk": "my-api",         // a dash in the owner's name
		"fluent-bit-x7k2p":       "fluent-bit",     // DaemonSet or Job
		"db-0":                   "db-0",           // StatefulSet: each pod is its own identity
		"curl":                   "curl",           // a bare pod
		"my-app-backend":         "my-app-backend", // "backend" is not a generated suffix (vowels)
		"job-abcde":              "job-abcde",      // nor is "abcde" (vowels)
		"web-hello-x7k2p":        "web-hello",      // a 5-character suffix after a word that is no hash
		"-x7k2p":                 "-x7k2p",
	} {
		assert.Equal(t, want, workloadOf(pod), pod)
	}
}
