package k8smeta

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// AuthType says how the receiver authenticates to the Kubernetes API server; the values
// are those of contrib's k8sconfig auth_type, so users configure both the same way.
type AuthType string

const (
	// AuthTypeNone uses no API server: attribution stays with what the node knows (pod UID
	// and container id from cgroups). Unlike contrib's k8sconfig, where none means "in-cluster
	// without credentials", podnet works without Kubernetes, so none turns the API off.
	AuthTypeNone AuthType = "none"
	// AuthTypeServiceAccount uses the pod's mounted ServiceAccount token and CA: the normal
	// DaemonSet deployment (see examples/rbac.yaml).
	AuthTypeServiceAccount AuthType = "serviceAccount"
	// AuthTypeKubeConfig loads a kubeconfig file: running outside the cluster.
	AuthTypeKubeConfig AuthType = "kubeConfig"
)

// APIConfig selects the API server and credentials.
type APIConfig struct {
	AuthType AuthType `mapstructure:"auth_type"`
	// KubeConfig is the kubeconfig file for AuthTypeKubeConfig; empty means the usual
	// KUBECONFIG / ~/.kube/config lookup.
	KubeConfig string `mapstructure:"kubeconfig"`
	// PeerPods says which remote pods are named (all, endpoints, none): see PeerPods. It is
	// the large-cluster choice, what every node asks of the API server.
	PeerPods PeerPods `mapstructure:"peer_pods"`
}

// Validate reports an unknown auth type or a kubeconfig path given for another type.
func (c APIConfig) Validate() error {
	switch c.AuthType {
	case AuthTypeNone, AuthTypeServiceAccount, AuthTypeKubeConfig:
	default:
		return fmt.Errorf("auth_type %q: want %q, %q or %q", c.AuthType, AuthTypeNone, AuthTypeServiceAccount, AuthTypeKubeConfig)
	}
	if c.KubeConfig != "" && c.AuthType != AuthTypeKubeConfig {
		return fmt.Errorf("kubeconfig is only used with auth_type %q", AuthTypeKubeConfig)
	}
	if err := c.PeerPods.validate(); err != nil {
		return err
	}
	if c.PeerPods.orAll() != PeerPodsAll && c.AuthType == AuthTypeNone {
		return fmt.Errorf("peer_pods %q needs the API server: set auth_type to %q or %q, or drop peer_pods (with auth_type none no pod is named)", c.PeerPods, AuthTypeServiceAccount, AuthTypeKubeConfig)
	}
	return nil
}

// RESTConfig builds the client configuration for the chosen auth type.
func (c APIConfig) RESTConfig() (*rest.Config, error) {
	switch c.AuthType {
	case AuthTypeServiceAccount:
		return rest.InClusterConfig()
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = c.KubeConfig
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil && c.KubeConfig != "" {
			return nil, fmt.Errorf("kubernetes.kubeconfig %q: %w (point it at a readable kubeconfig file, or leave it out for $KUBECONFIG or ~/.kube/config)", c.KubeConfig, err)
		}
		if err != nil {
			return nil, fmt.Errorf("no kubernetes.kubeconfig set, and the default ($KUBECONFIG or ~/.kube/config): %w (set kubernetes.kubeconfig, or use auth_type serviceAccount in a pod)", err)
		}
		return rc, nil
	case AuthTypeNone:
		return nil, errors.New("auth_type none: no API server is used")
	}
	return nil, c.Validate()
}
