package k8smeta

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// Every request names podnet, as the receiver's Options say, or as the kubeconfig does when it
// names a user agent itself; never Go's default.
func TestRequestsNamePodnet(t *testing.T) {
	for _, tc := range []struct{ configured, option, want string }{
		{"", "podnet/1.2.3 (linux/amd64) node/node-a", "podnet/1.2.3 (linux/amd64) node/node-a"},
		{"", "", "podnet"},
		{"ops-tool/7", "podnet/1.2.3", "ops-tool/7"},
	} {
		agents := make(chan string, 100)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case agents <- r.UserAgent():
			default:
			}
			http.Error(w, "not here", http.StatusServiceUnavailable)
		}))
		s, err := NewStore(&rest.Config{Host: srv.URL, UserAgent: tc.configured}, Options{NodeName: "node-a", UserAgent: tc.option})
		require.NoError(t, err)
		s.Run()
		got := <-agents
		s.Stop()
		srv.Close()
		assert.Equal(t, tc.want, got, "configured %q, option %q", tc.configured, tc.option)
	}
}
