package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/podnet/podnet/bench/internal/agentproc"
	"github.com/podnet/podnet/bench/internal/agentstats"
)

// workload is a server and the load that drives it, between the two namespaces.
type workload interface {
	name() string
	describe() string
	start(p *pods) (stop func(), err error)
	load(p *pods, d time.Duration) (loadResult, error)
}

// holder is a workload that keeps connections open across its runs. podnet finds them when it
// starts; its runs wait (settleTime) before the measured window so that start-up work stays
// out. periodicOnly ones have no load of their own to compare with a baseline: both runs of
// their pairs have podnet attached, the "baseline" one with the held connections closed, so
// the difference is what podnet spends on them.
type holder interface {
	periodicOnly() bool
	hold(p *pods, open bool) error
}

// scenario is how podnet is configured for the "podnet attached" runs.
type scenario struct {
	name      string
	pipelines string   // podnet-agent -pipelines
	config    string   // podnet-agent -config (receiver settings as JSON)
	env       []string // added to podnet-agent's environment, e.g. GOGC=400
	about     string
	targets   targets
	// versus names the scenario this one is compared with pair by pair (podnet's own cost,
	// this one's less that one's), when both run.
	versus string
	byName bool // left out of the default -scenarios: run only when named
}

// targets are the overhead budgets a scenario is held to (issue 5).
type targets struct {
	minRate  float64 // connection-rate ratio, podnet/baseline
	maxP99   float64 // p99 latency ratio
	zeroLoss bool    // no ring-buffer reserve failures
}

// run is one timed run, with or without podnet.
type run struct {
	load  loadResult
	agent *agentRun // nil for a baseline run
	// foreign is how many other podnet instances were attached during the run.
	foreign int
}

// agentRun is what podnet cost and saw during one run.
type agentRun struct {
	cpu      time.Duration // podnet-agent's exact CPU (agentproc.CPU) over window
	window   time.Duration // the wall time measured
	rss, hwm int64         // KiB
	counters agentstats.Counters
	bpf      bpfRun
}

// pair is one baseline run and one podnet run, back to back; podnetFirst alternates so a
// drift in machine noise does not always favour the same side.
type pair struct {
	base, podnet run
	podnetFirst  bool
}

// drainWait lets the agent read what the kernel wrote during the run (a few poll intervals)
// before its CPU is sampled.
const drainWait = 300 * time.Millisecond

type runner struct {
	pods       *pods
	agent      string
	duration   time.Duration
	profileDir string
}

// measure runs n pairs of every scenario on w, interleaved: pair i of each scenario before pair
// i+1 of any, in reverse order every other pair, so that scenarios compared with each other
// (scenario.versus) meet the machine in the same state. A scenario whose agent does not start
// is given up (failed), here and for the workloads after.
func (r *runner) measure(w workload, scs []scenario, n int, failed map[string]error) (map[string][]pair, error) {
	// One discarded run first: it fills the client's TIME_WAIT table the way every later run
	// finds it, and warms caches.
	if !isPeriodicOnly(w) {
		if _, err := w.load(r.pods, r.duration/2); err != nil {
			return nil, err
		}
	}
	out := map[string][]pair{}
	for i := range n {
		order := slices.Clone(scs)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, sc := range order {
			if failed[sc.name] != nil {
				continue
			}
			fmt.Fprintf(os.Stderr, "%s / %s: pair %d of %d, runs of %v\n", sc.name, w.name(), i+1, n, r.duration)
			p, err := r.pair(w, sc, i)
			var startErr agentStartError
			if errors.As(err, &startErr) {
				fmt.Fprintf(os.Stderr, "\n*** %s: podnet-agent did not start; scenario given up ***\n\n", sc.name)
				failed[sc.name] = startErr
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			out[sc.name] = append(out[sc.name], p)
		}
	}
	return out, nil
}

// pair is pair i of sc on w: a baseline run and a podnet run, their order alternating with i.
func (r *runner) pair(w workload, sc scenario, i int) (pair, error) {
	p := pair{podnetFirst: i%2 == 1}
	for _, withPodnet := range []bool{p.podnetFirst, !p.podnetFirst} {
		res, err := r.side(w, sc, i, withPodnet)
		if err != nil {
			return p, err
		}
		if withPodnet {
			p.podnet = res
		} else {
			p.base = res
		}
	}
	return p, nil
}

// side is one run of pair i: with or without podnet or, for a periodic-only workload, podnet
// with or without the held connections.
func (r *runner) side(w workload, sc scenario, i int, withPodnet bool) (run, error) {
	profile := ""
	if withPodnet && r.profileDir != "" {
		profile = filepath.Join(r.profileDir, fmt.Sprintf("%s-%s-%d.pprof", fileName(sc.name), w.name(), i))
	}
	if h, ok := w.(holder); ok && h.periodicOnly() {
		if err := h.hold(r.pods, withPodnet); err != nil {
			return run{}, err
		}
		return r.once(w, sc, true, profile)
	}
	return r.once(w, sc, withPodnet, profile)
}

func (r *runner) once(w workload, sc scenario, withPodnet bool, profile string) (run, error) {
	if !withPodnet {
		others := watchObservers(observers, observerEvery)
		l, err := w.load(r.pods, r.duration)
		return run{load: l, foreign: others()}, err
	}
	stats, err := agentproc.EnableBPFStats()
	if err != nil {
		return run{}, err
	}
	defer stats.Close()
	a, err := startAgent(r.agent, sc, r.pods, profile)
	if err != nil {
		return run{}, agentStartError{err}
	}
	before := observers() - 1 // minus our own agent
	observed := watchObservers(observers, observerEvery)
	defer observed()
	if _, ok := w.(holder); ok {
		time.Sleep(settleTime(sc))
	}
	t0 := time.Now()
	cpu0, err := a.CPU()
	bpf0, bpfErr := a.BPF()
	if err = errors.Join(err, bpfErr); err != nil {
		_, _ = a.Stop()
		return run{}, err
	}
	l, err := w.load(r.pods, r.duration)
	others := observed() - 1
	time.Sleep(drainWait)
	cpu1, cpuErr := a.CPU()
	bpf1, bpfErr := a.BPF()
	window := time.Since(t0)
	rss, hwm := a.Memory()
	c, stopErr := a.Stop()
	waitUnloaded(before)
	for _, e := range []error{err, cpuErr, bpfErr, stopErr} {
		if e != nil {
			return run{}, e
		}
	}
	ag := &agentRun{cpu: cpu1 - cpu0, window: window, rss: rss, hwm: hwm, counters: c, bpf: bpfSince(bpf0, bpf1)}
	return run{load: l, agent: ag, foreign: others}, nil
}

// agentStartError is a podnet-agent that did not start: its scenario's fault (a configuration
// this podnet does not accept yet, say), not the bench's, so only that scenario is given up.
type agentStartError struct{ err error }

func (e agentStartError) Error() string { return e.err.Error() }
func (e agentStartError) Unwrap() error { return e.err }

// waitUnloaded waits (up to 5 s) until no more podnet instances are loaded than want. An agent's
// programs are freed a moment after it exits (the kernel defers it past an RCU grace period);
// a baseline run started before that would be flagged, and taxed, by them.
func waitUnloaded(want int) {
	for deadline := time.Now().Add(5 * time.Second); observers() > want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}
