package main

import (
	"fmt"
	"math"
	"slices"
)

// spread is the median and range of one measure over the pairs: the median is the result,
// the range shows how much the noisy machine moved it.
type spread struct{ med, min, max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(v))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[len(s)-1]}
}

func (s spread) format(verb string) string {
	return fmt.Sprintf(verb+" ["+verb+"–"+verb+"]", s.med, s.min, s.max)
}

// summary is one workload under one scenario, over all its pairs.
type summary struct {
	scenario scenario
	workload workload
	pairs    []pair

	baseRate, rate, p50, p99, cpuPer1k, eventsPerConn, rssMiB spread
	lost, recursion, dropped, loadErrors                      int64
	// contaminated counts pairs during which another podnet instance was attached; the
	// summary leaves them out unless every pair is.
	contaminated int
}

func summarize(sc scenario, w workload, pairs []pair) summary {
	s := summary{scenario: sc, workload: w, pairs: pairs}
	var clean []pair
	for _, p := range pairs {
		if p.base.foreign > 0 || p.podnet.foreign > 0 {
			s.contaminated++
		} else {
			clean = append(clean, p)
		}
	}
	if len(clean) > 0 {
		pairs = clean
	}
	var base, rate, p50, p99, cpu, epc, rss []float64
	for _, p := range pairs {
		b, a := p.base.load, p.podnet.load
		ag := p.podnet.agent
		base = append(base, b.rate())
		rate = append(rate, a.rate()/b.rate())
		p50 = append(p50, float64(a.P50)/float64(b.P50))
		p99 = append(p99, float64(a.P99)/float64(b.P99))
		cpu = append(cpu, ag.cpu.Seconds()*1e3/float64(a.Connections)*1e3)
		epc = append(epc, float64(ag.counters.EventsReceived)/float64(a.Connections))
		rss = append(rss, float64(ag.hwm)/1024)
		s.lost += ag.counters.EventsLost
		s.recursion += ag.counters.RecursionMisses
		s.dropped += ag.counters.EventsDropped
		s.loadErrors += b.Errors + a.Errors
	}
	s.baseRate, s.rate, s.p50, s.p99 = spreadOf(base), spreadOf(rate), spreadOf(p50), spreadOf(p99)
	s.cpuPer1k, s.eventsPerConn, s.rssMiB = spreadOf(cpu), spreadOf(epc), spreadOf(rss)
	return s
}

// verdicts compares the medians with the scenario's targets.
func (s summary) verdicts() []string {
	t := s.scenario.targets
	var out []string
	if t.minRate > 0 {
		out = append(out, verdict("rate ratio", s.rate.med, t.minRate, s.rate.med >= t.minRate, "≥"))
	}
	if t.maxP99 > 0 {
		out = append(out, verdict("p99 ratio", s.p99.med, t.maxP99, s.p99.med <= t.maxP99, "≤"))
	}
	if t.zeroLoss {
		v := "met"
		if s.lost > 0 {
			v = fmt.Sprintf("MISSED: %d events lost", s.lost)
		}
		out = append(out, "zero reserve failures: "+v)
	}
	return out
}

func verdict(what string, got, target float64, ok bool, rel string) string {
	if ok {
		return fmt.Sprintf("%s %.3f (target %s %.2f): met", what, got, rel, target)
	}
	return fmt.Sprintf("%s %.3f (target %s %.2f): MISSED by %.1f%%", what, got, rel, target, 100*math.Abs(got-target)/target)
}
