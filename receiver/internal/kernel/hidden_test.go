package kernel

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/podnet/podnet/internal/hiddenclose"
)

// hidden counts the closes (or handshakes' ends) no BPF program can see on the development VM
// (see internal/hiddenclose): the tests expect exactly those missing.
type hidden struct {
	t    *testing.T
	w    *hiddenclose.Watcher
	what string
}

// watchers numbers the tracefs instances of this test process.
var watchers atomic.Int64

func watchHiddenCloses(t *testing.T) hidden {
	return watchHidden(t, "closes", hiddenclose.Watch)
}

func watchHiddenEstablishments(t *testing.T) hidden {
	return watchHidden(t, "handshakes' ends", hiddenclose.WatchEstablished)
}

func watchHiddenFailedConnects(t *testing.T) hidden {
	return watchHidden(t, "failed connects", hiddenclose.WatchFailedConnects)
}

func watchHidden(t *testing.T, what string, watch func(name string) (*hiddenclose.Watcher, error)) hidden {
	w, err := watch(fmt.Sprintf("podnet-test-%d", watchers.Add(1))) // one tracefs instance each
	if err != nil {
		t.Logf("%s hidden from BPF not counted: %v", what, err)
		return hidden{t: t, what: what}
	}
	t.Cleanup(func() { _ = w.Close() })
	return hidden{t: t, w: w, what: what}
}

// count returns the hidden changes so far at server ends (local port) and client ends.
func (h hidden) count(port int) (server, client int) {
	server, client, err := h.w.Count(port)
	if err != nil {
		h.t.Logf("%s hidden from BPF not counted: %v", h.what, err)
	}
	return server, client
}
