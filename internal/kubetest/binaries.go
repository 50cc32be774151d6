package kubetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// kubeVersion is the kube-apiserver that tools/kube/build.sh builds; keep both in step.
const kubeVersion = "v1.37.2"

type binaries struct {
	apiserver string
	etcd      string
}

// findBinaries locates kube-apiserver (built by tools/kube/build.sh into PODNET_KUBE_BIN or
// the default cache) and etcd (PATH, Debian's etcd-server). Missing binaries skip the test
// on a developer machine but fail it in CI, where a skip would hide lost coverage.
func findBinaries(t testing.TB) binaries {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		missing(t, err.Error())
	}
	b := binaries{apiserver: filepath.Join(dir, "kube-apiserver")}
	if _, err := os.Stat(b.apiserver); err != nil {
		missing(t, "kube-apiserver not found at "+b.apiserver+": run tools/kube/build.sh (set PODNET_KUBE_BIN to use another directory)")
	}
	if b.etcd, err = exec.LookPath("etcd"); err != nil {
		missing(t, "etcd not in PATH: apt-get install etcd-server")
	}
	return b
}

func binDir() (string, error) {
	if dir := os.Getenv("PODNET_KUBE_BIN"); dir != "" {
		return dir, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", errors.New("no cache directory to find kube-apiserver in: set PODNET_KUBE_BIN")
	}
	return filepath.Join(cache, "podnet", "kube", kubeVersion, "bin"), nil
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal("kubetest: " + msg)
	}
	t.Skip("kubetest: SKIPPING, no real API server: " + msg)
}
