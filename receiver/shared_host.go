//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
)

// statusFanout is the host the one shared receiver starts with: the collector makes one
// instance per pipeline signal, each with its own status, and Start runs only for the first.
// Reported to that one alone, an API server outage left the other instance StatusOK, so a
// health check on it said nothing was wrong (found by an independent check). As the
// collector's internal sharedcomponent does, every instance's host hears every report, and one
// whose Start comes later hears the last few said before it.
type statusFanout struct {
	component.Host
	mu      sync.Mutex
	sources []componentstatus.Reporter
	recent  []*componentstatus.Event // the last maxReplayed reports, oldest first
}

// maxReplayed is how many past reports a late instance hears: enough for the last transition
// (an error, then a recovery) whatever came before it.
const maxReplayed = 5

var _ componentstatus.Reporter = (*statusFanout)(nil)

func newStatusFanout(first component.Host) *statusFanout {
	h := &statusFanout{Host: first}
	h.add(first)
	return h
}

// add makes host hear every later report and the recent ones; a host that cannot hear
// status (not a componentstatus.Reporter) is left out.
func (h *statusFanout) add(host component.Host) {
	r, ok := host.(componentstatus.Reporter)
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.recent {
		r.Report(e)
	}
	h.sources = append(h.sources, r)
}

func (h *statusFanout) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recent) == maxReplayed {
		h.recent = append(h.recent[:0], h.recent[1:]...)
	}
	h.recent = append(h.recent, e)
	for _, r := range h.sources {
		r.Report(e)
	}
}
