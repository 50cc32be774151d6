package main

import (
	"fmt"
	"math"
	"slices"
)

// spread is the median and range of one measure over the pairs: the median is the result,
// the range shows how much the noisy machine moved it. lo–hi is a confidence interval of at
// least 95% for the median (hasCI: needs 6 pairs or more).
type spread struct {
	n             int // values; 0: not measured
	med, min, max float64
	lo, hi        float64
	hasCI         bool
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(v))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	sp := spread{n: len(s), med: med, min: s[0], max: s[len(s)-1]}
	if k := medianCIRank(len(s)); k > 0 {
		sp.lo, sp.hi, sp.hasCI = s[k-1], s[len(s)-k], true
	}
	return sp
}

// medianCIRank is the largest k whose order statistics x(k) and x(n-k+1) bound the median
// with at least 95% confidence, whatever the distribution: each value falls on either side of
// the true median with probability 1/2, so P(median outside) = 2·P(Binomial(n, 1/2) < k).
// 0 when n is too small for any such k (n < 6).
func medianCIRank(n int) int {
	k, below := 0, 0.0 // below = P(B < k+1) as k grows
	for j := 0; j < n; j++ {
		below += binomialHalf(n, j)
		if 2*below > 0.05 {
			return k
		}
		k = j + 1
	}
	return k
}

// binomialHalf is P(Binomial(n, 1/2) = j).
func binomialHalf(n, j int) float64 {
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x + 1)); return v }
	return math.Exp(lg(n) - lg(j) - lg(n-j) - float64(n)*math.Ln2)
}

// ci is " (95% CI lo–hi)", or "" without an interval.
func (s spread) ci() string {
	if !s.hasCI {
		return ""
	}
	return fmt.Sprintf(" (95%% CI %.3f–%.3f)", s.lo, s.hi)
}

func (s spread) format(verb string) string {
	if s.n == 0 {
		return "—"
	}
	return fmt.Sprintf(verb+" ["+verb+"–"+verb+"]", s.med, s.min, s.max)
}

// summary is one workload under one scenario, over all its pairs.
type summary struct {
	scenario scenario
	workload workload
	pairs    []pair

	// failed is why podnet did not run for this scenario; the summary has nothing else.
	failed error

	baseRate, rate, p50, p99, cpuPer1k, bpfPerConn, eventsPerConn, rssMiB spread
	// Over every pair, those left out too: our own agent's losses are real whatever else ran.
	lost, recursion, dropped, baseErrors, podnetErrors int64
	// Periodic-only workloads (long-lived-quiet): podnet with no load, without and with the
	// held connections.
	floorPerInterval, perInterval, perInterval10k, sockets, timeWait spread
	// excluded is why each pair is left out of the medians ("usable" if it is not). contaminated
	// counts pairs with another podnet instance attached, eventsOff those whose events per
	// connection (expected, if known) say other traffic ran through podnet: both left out unless
	// every pair is. rejected pairs are always left out; used is how many pairs the medians have.
	excluded                                []exclusion
	expected                                float64
	contaminated, eventsOff, rejected, used int
}

func summarize(sc scenario, w workload, pairs []pair) summary {
	s := summary{scenario: sc, workload: w, pairs: pairs, expected: expectedEvents(sc, w)}
	for _, p := range pairs {
		for _, ag := range []*agentRun{p.base.agent, p.podnet.agent} {
			if ag != nil { // a periodic-only pair has two
				s.lost += ag.counters.EventsLost
				s.recursion += ag.counters.RecursionMisses
				s.dropped += ag.counters.EventsDropped
			}
		}
		if !isPeriodicOnly(w) {
			s.baseErrors += p.base.load.Errors
			s.podnetErrors += p.podnet.load.Errors
		}
		e := judge(p, s.expected, !isPeriodicOnly(w))
		s.excluded = append(s.excluded, e)
		if foreign(p) {
			s.contaminated++
		}
		if e == eventsOff {
			s.eventsOff++
		}
		if e.rejected() {
			s.rejected++
		}
	}
	pairs = s.usable()
	s.used = len(pairs)
	if isPeriodicOnly(w) {
		return summarizePeriodic(s, pairs)
	}
	var base, rate, p50, p99, cpu, bpf, epc, rss []float64
	for _, p := range pairs {
		b, a := p.base.load, p.podnet.load
		ag := p.podnet.agent
		base = append(base, b.rate())
		rate = append(rate, a.rate()/b.rate())
		if b.P50 > 0 && a.P50 > 0 { // a workload that measures no latency leaves them out
			p50 = append(p50, float64(a.P50)/float64(b.P50))
			p99 = append(p99, float64(a.P99)/float64(b.P99))
		}
		cpu = append(cpu, ag.cpu.Seconds()*1e3/float64(a.Connections)*1e3)
		bpf = append(bpf, ag.bpf.perConn(a.Connections))
		epc = append(epc, float64(ag.counters.EventsReceived)/float64(a.Connections))
		rss = append(rss, float64(ag.hwm)/1024)
	}
	s.baseRate, s.rate, s.p50, s.p99 = spreadOf(base), spreadOf(rate), spreadOf(p50), spreadOf(p99)
	s.cpuPer1k, s.bpfPerConn, s.eventsPerConn, s.rssMiB = spreadOf(cpu), spreadOf(bpf), spreadOf(epc), spreadOf(rss)
	return s
}

// usable are the pairs the medians are taken over: those no other traffic ran beside or, if
// every pair had some, all that are not rejected.
func (s summary) usable() []pair {
	var clean, dirty []pair
	for i, p := range s.pairs {
		switch e := s.excluded[i]; {
		case e == usable:
			clean = append(clean, p)
		case !e.rejected():
			dirty = append(dirty, p)
		}
	}
	if len(clean) > 0 {
		return clean
	}
	return dirty
}

// verdicts compares the medians with the scenario's targets, and says which pairs the medians
// leave out and why.
func (s summary) verdicts() []string {
	t := s.scenario.targets
	var out []string
	switch {
	case t.minRate > 0 && s.used == 0:
		out = append(out, "rate ratio: not measured (every pair rejected)")
	case t.minRate > 0:
		out = append(out, verdict("rate ratio", s.rate, t.minRate, "≥"))
	}
	switch {
	case t.maxP99 > 0 && s.used == 0:
		out = append(out, "p99 ratio: not measured (every pair rejected)")
	case t.maxP99 > 0 && s.p99.n == 0:
		out = append(out, "p99 ratio: not measured (the workload reports no latency)")
	case t.maxP99 > 0:
		out = append(out, verdict("p99 ratio", s.p99, t.maxP99, "≤"))
	}
	if t.zeroLoss {
		v := "met"
		if s.lost > 0 {
			v = fmt.Sprintf("MISSED: %d events lost", s.lost)
		}
		out = append(out, "zero reserve failures: "+v)
	}
	if s.baseErrors+s.podnetErrors > 0 || s.rejected > 0 {
		out = append(out, fmt.Sprintf("load errors: %d in baseline runs, %d in podnet runs; %d of %d pairs rejected "+
			"(a run with no connection, or errors over %.0f%% of its connections) and left out of the medians",
			s.baseErrors, s.podnetErrors, s.rejected, len(s.pairs), 100*maxErrorFraction))
	}
	if s.eventsOff > 0 {
		out = append(out, fmt.Sprintf("WARNING: events per connection off the workload's %.0f by more than %.0f%% in %d of %d pairs: "+
			"other traffic on the node ran through podnet, and the per-connection BPF and collector CPU count it "+
			"(left out of the medians unless all were)", s.expected, 100*eventsTolerance, s.eventsOff, len(s.pairs)))
	}
	return out
}

// verdict judges the median against the target. With a confidence interval, a median on
// either side of the target whose interval still holds it is called what it is: not
// resolved at this machine's noise.
func verdict(what string, got spread, target float64, rel string) string {
	meets := func(x float64) bool {
		if rel == "≥" {
			return x >= target
		}
		return x <= target
	}
	head := fmt.Sprintf("%s %.3f (target %s %.2f)", what, got.med, rel, target)
	if got.hasCI {
		head = fmt.Sprintf("%s %.3f, 95%% CI %.3f–%.3f (target %s %.2f)", what, got.med, got.lo, got.hi, rel, target)
	}
	by := 100 * math.Abs(got.med-target) / target
	switch {
	case got.hasCI && meets(got.lo) != meets(got.hi) && meets(got.med):
		return head + ": met by the median, within noise (the interval holds the target)"
	case got.hasCI && meets(got.lo) != meets(got.hi):
		return fmt.Sprintf("%s: missed by the median by %.1f%%, within noise (the interval holds the target)", head, by)
	case meets(got.med):
		return head + ": met"
	}
	return fmt.Sprintf("%s: MISSED by %.1f%%", head, by)
}
