package main

import (
	"encoding/json"
	"strings"
)

// exclusion is why a pair is left out of the medians, if it is.
type exclusion int

const (
	usable exclusion = iota
	// otherPodnet: another podnet instance was attached during a run; its programs tax every
	// connection. Left out unless every pair was.
	otherPodnet
	// eventsOff: podnet saw more events per connection (read or lost) than the workload makes,
	// so other traffic on the node ran through podnet meanwhile (it observes every namespace), and
	// the per-connection BPF and collector CPU include it. Left out unless every pair was. Fewer
	// is podnet's own shortfall (loss, or events it missed), which the medians must keep.
	eventsOff
	// Rejected, always left out: a run with no connection (its ratios are infinite) or with load
	// errors over maxErrorFraction of its connections (a baseline that failed its connects is
	// no baseline).
	noConnections
	loadFailed
)

const (
	maxErrorFraction = 0.01
	eventsTolerance  = 0.02
)

func (e exclusion) String() string {
	return [...]string{"", "other podnet attached", "events/conn off", "rejected: no connections", "rejected: load errors"}[e]
}

// rejected says the pair is never used, even when no pair is left.
func (e exclusion) rejected() bool { return e >= noConnections }

// judge says whether pair p is usable; expected is the events per connection its podnet run
// should report (0: not checked). A pair without load of its own (periodic-only: !load) has
// no connections, errors nor events to judge.
func judge(p pair, expected float64, load bool) exclusion {
	for _, l := range []loadResult{p.base.load, p.podnet.load} {
		switch {
		case load && l.Connections == 0:
			return noConnections
		case load && float64(l.Errors) > maxErrorFraction*float64(l.Connections):
			return loadFailed
		}
	}
	if foreign(p) {
		return otherPodnet
	}
	if expected > 0 {
		c := p.podnet.agent.counters
		got := float64(c.EventsReceived+c.EventsLost) / float64(p.podnet.load.Connections)
		if got-expected > eventsTolerance*expected {
			return eventsOff
		}
	}
	return usable
}

func foreign(p pair) bool { return p.base.foreign > 0 || p.podnet.foreign > 0 }

// connEvents is how many events podnet reports per connection of the short-connection workloads:
// a connect, an accept, and a close at each end.
const connEvents = 4

// expectedEvents is the events per connection podnet reports for w under sc, where that is
// known, or 0: a scenario that reports every event (logs unsampled, or metrics aggregated in
// user space) on a workload whose connections each open and close once.
func expectedEvents(sc scenario, w workload) float64 {
	switch w := w.(type) {
	case loadgenWorkload, nginxWorkload:
	case goWorkload:
		if w.mode != modeConnect && w.mode != modeRequest {
			return 0 // go-bulk's "connections" are writes
		}
	default:
		return 0 // the routed and long-lived workloads: not established
	}
	var c struct {
		MetricsAggregation string `json:"metrics_aggregation"`
		Logs               struct {
			Sampling json.RawMessage `json:"sampling"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(sc.config), &c); err != nil || c.Logs.Sampling != nil {
		return 0
	}
	if strings.Contains(sc.pipelines, "logs") || c.MetricsAggregation == "events" {
		return connEvents
	}
	return 0
}
