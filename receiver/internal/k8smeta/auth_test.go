package k8smeta

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAPIConfigValidate(t *testing.T) {
	for _, ok := range []APIConfig{
		{AuthType: AuthTypeNone},
		{AuthType: AuthTypeServiceAccount},
		{AuthType: AuthTypeKubeConfig},
		{AuthType: AuthTypeKubeConfig, KubeConfig: "/etc/kubeconfig"},
		{AuthType: AuthTypeNone, PeerPods: PeerPodsAll},
		{AuthType: AuthTypeServiceAccount, PeerPods: PeerPodsEndpoints},
		{AuthType: AuthTypeKubeConfig, PeerPods: PeerPodsNone},
	} {
		assert.NoError(t, ok.Validate(), "%+v", ok)
	}
	assert.ErrorContains(t, APIConfig{AuthType: "tls"}.Validate(), `auth_type "tls"`)
	assert.ErrorContains(t, APIConfig{}.Validate(), `auth_type ""`)
	assert.ErrorContains(t, APIConfig{AuthType: AuthTypeServiceAccount, KubeConfig: "/x"}.Validate(), "only used with")
	assert.ErrorContains(t, APIConfig{AuthType: AuthTypeServiceAccount, PeerPods: "services"}.Validate(), `peer_pods "services": want "all"`)
	assert.ErrorContains(t, APIConfig{AuthType: AuthTypeNone, PeerPods: PeerPodsNone}.Validate(), `peer_pods "none" needs the API server`)
}

func TestAPIConfigNoneUsesNoAPIServer(t *testing.T) {
	_, err := APIConfig{AuthType: AuthTypeNone}.RESTConfig()
	assert.ErrorContains(t, err, "no API server")
}

func TestAPIConfigServiceAccountOutsideCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := APIConfig{AuthType: AuthTypeServiceAccount}.RESTConfig()
	assert.Error(t, err)
}

// The error names the setting to fix (found by an independent check: it named neither).
func TestAPIConfigMissingKubeconfig(t *testing.T) {
	missing := t.TempDir() + "/missing"
	_, err := APIConfig{AuthType: AuthTypeKubeConfig, KubeConfig: missing}.RESTConfig()
	assert.ErrorContains(t, err, `kubernetes.kubeconfig "`+missing+`"`)
	t.Setenv("KUBECONFIG", missing)
	_, err = APIConfig{AuthType: AuthTypeKubeConfig}.RESTConfig()
	assert.ErrorContains(t, err, "set kubernetes.kubeconfig")
}
