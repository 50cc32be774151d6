package kubetest

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// startEtcd runs a single-member etcd on loopback with its data in dir; it returns the
// client URL for kube-apiserver.
func startEtcd(path, dir string) (*process, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p := &process{
		name: "etcd",
		path: path,
		args: []string{
			"--name=kubetest",
			"--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kubetest=" + peerURL,
			// The default 100000 entries of in-memory raft log are wasted on a test.
			"--snapshot-count=10000",
		},
		logPath: filepath.Join(dir, "etcd.log"),
	}
	if err := p.start(); err != nil {
		return nil, "", err
	}
	if err := waitReady(p, &http.Client{}, clientURL+"/health", "", 30*time.Second); err != nil {
		p.stop(0)
		return nil, "", err
	}
	return p, clientURL, nil
}
