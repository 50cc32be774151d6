package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// ServiceCIDRs are the (dual-stack) ranges Services get their ClusterIPs from. Nothing is
// ever routed to them: they only exist as API objects.
const ServiceCIDRs = "10.96.0.0/16,fd00:10:96::/112"

// apiserverProcess builds the kube-apiserver command line: loopback only, static token
// authentication, RBAC, and the service-account signing keys TokenRequest needs.
func apiserverProcess(path, dir, etcdURL string, port int, certs pki, adminToken string) (*process, error) {
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"groups": system:masters bypasses RBAC, as a cluster admin would.
	line := adminToken + ",kubetest-admin,kubetest-admin,\"system:masters\"\n"
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		return nil, err
	}
	return &process{
		name: "kube-apiserver",
		path: path,
		args: []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", port),
			// Without these two it looks for a non-loopback address and manages the
			// kubernetes Service endpoints, neither of which exists here.
			"--advertise-address=127.0.0.1",
			"--endpoint-reconciler-type=none",
			"--cert-dir=" + filepath.Join(dir, "certs"),
			"--tls-cert-file=" + certs.servingCert,
			"--tls-private-key-file=" + certs.servingKey,
			"--token-auth-file=" + tokens,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + certs.saPublic,
			"--service-account-signing-key-file=" + certs.saPrivate,
			"--service-cluster-ip-range=" + ServiceCIDRs,
		},
		logPath: filepath.Join(dir, "kube-apiserver.log"),
	}, nil
}

// waitAPIServer waits for /readyz, which turns 200 only once RBAC's bootstrap roles and the
// other post-start hooks are done: before that, authorization answers are not final.
func waitAPIServer(p *process, host string, caPEM []byte, adminToken string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return waitReady(p, client, host+"/readyz", adminToken, 90*time.Second)
}
