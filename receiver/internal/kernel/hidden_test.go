package kernel

import (
	"testing"

	"github.com/podnet/podnet/internal/hiddenclose"
)

// hidden counts the closes no BPF program can see on the development VM (see
// internal/hiddenclose): the tests expect exactly those missing.
type hidden struct {
	t *testing.T
	w *hiddenclose.Watcher
}

func watchHiddenCloses(t *testing.T) hidden {
	w, err := hiddenclose.Watch("podnet-test")
	if err != nil {
		t.Logf("closes hidden from BPF not counted: %v", err)
		return hidden{t: t}
	}
	t.Cleanup(func() { _ = w.Close() })
	return hidden{t: t, w: w}
}

// count returns the hidden closes so far at server ends (local port) and client ends.
func (h hidden) count(port int) (server, client int) {
	server, client, err := h.w.Count(port)
	if err != nil {
		h.t.Logf("closes hidden from BPF not counted: %v", err)
	}
	return server, client
}
