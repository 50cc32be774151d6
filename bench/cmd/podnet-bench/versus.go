package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// comparison is a scenario against the one it names (scenario.versus) on one workload, pair by
// pair: pair i of both ran back to back (runner.measure), so their difference is what the
// scenario's setting costs, with less of the machine's drift than two separate runs would have.
type comparison struct {
	this, that summary
	pairs      int // compared (without another podnet instance attached to either)
	// Per connection: BPF run time, and the collector's exact CPU (agentproc.CPU).
	bpfThis, bpfThat, bpfDiff, bpfRatio spread
	cpuThis, cpuThat, cpuDiff, cpuRatio spread
	rate                                spread // podnet runs' connection rate, this over that
}

// comparisons pairs every summary whose scenario names a versus with that scenario's summary on
// the same workload, when both ran.
func comparisons(sums []summary) []comparison {
	var out []comparison
	for _, s := range sums {
		if s.scenario.versus == "" || s.failed != nil || isPeriodicOnly(s.workload) {
			continue
		}
		for _, o := range sums {
			if o.scenario.name == s.scenario.versus && o.workload.name() == s.workload.name() && o.failed == nil {
				out = append(out, compare(s, o))
			}
		}
	}
	return out
}

// compare leaves out, as summarize does, the pairs either scenario left out: rejected ones
// always, those with other traffic (another podnet instance, events off) unless every pair had some.
func compare(this, that summary) comparison {
	c := comparison{this: this, that: that}
	var use, all []int
	for i := range min(len(this.pairs), len(that.pairs)) {
		a, b := this.excluded[i], that.excluded[i]
		if !a.rejected() && !b.rejected() {
			all = append(all, i)
		}
		if a == usable && b == usable {
			use = append(use, i)
		}
	}
	if len(use) == 0 {
		use = all
	}
	c.pairs = len(use)
	var bThis, bThat, bDiff, bRatio, cThis, cThat, cDiff, cRatio, rate []float64
	for _, i := range use {
		a, b := this.pairs[i].podnet, that.pairs[i].podnet
		ba, bb := a.agent.bpf.perConn(a.load.Connections), b.agent.bpf.perConn(b.load.Connections)
		ca, cb := cpuPerConn(a), cpuPerConn(b)
		bThis, bThat, bDiff, bRatio = append(bThis, ba), append(bThat, bb), append(bDiff, ba-bb), append(bRatio, ba/bb)
		cThis, cThat, cDiff, cRatio = append(cThis, ca), append(cThat, cb), append(cDiff, ca-cb), append(cRatio, ca/cb)
		rate = append(rate, a.load.rate()/b.load.rate())
	}
	c.bpfThis, c.bpfThat, c.bpfDiff, c.bpfRatio = spreadOf(bThis), spreadOf(bThat), spreadOf(bDiff), spreadOf(bRatio)
	c.cpuThis, c.cpuThat, c.cpuDiff, c.cpuRatio = spreadOf(cThis), spreadOf(cThat), spreadOf(cDiff), spreadOf(cRatio)
	c.rate = spreadOf(rate)
	return c
}

// cpuPerConn is the collector's exact CPU in µs per connection of a podnet run.
func cpuPerConn(r run) float64 {
	return float64(r.agent.cpu) / 1e3 / float64(r.load.Connections)
}

// printComparisons writes the comparison table, if any scenario was run with its versus.
func printComparisons(w io.Writer, cs []comparison) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nPair by pair against another scenario (µs per connection; median [min–max] over pairs):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tversus\tworkload\tpairs\tBPF\tBPF versus\tBPF Δ\tBPF ratio\tcollector\tcollector versus\tcollector Δ\tcollector ratio\tconn/s ratio")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.this.scenario.name, c.that.scenario.name, c.this.workload.name(), c.pairs,
			c.bpfThis.format("%.2f"), c.bpfThat.format("%.2f"), c.bpfDiff.format("%+.2f"), c.bpfRatio.format("%.3f"),
			c.cpuThis.format("%.2f"), c.cpuThat.format("%.2f"), c.cpuDiff.format("%+.2f"), c.cpuRatio.format("%.3f"), c.rate.format("%.3f"))
	}
	_ = tw.Flush()
}

// writeComparisonMarkdown adds a scenario's comparisons on every workload to its results file.
func writeComparisonMarkdown(b *strings.Builder, cs []comparison) {
	for _, c := range cs {
		fmt.Fprintf(b, "## %s against %s, %s\n\n", c.this.scenario.name, c.that.scenario.name, c.this.workload.name())
		fmt.Fprintf(b, "Pair i of both ran back to back. Per connection of the podnet runs: BPF run time, and the collector's "+
			"exact CPU (the process's CPU clock, clock_gettime: its threads' scheduler run time). %d pairs compared.\n\n", c.pairs)
		b.WriteString("| pair | BPF µs/conn | BPF µs/conn versus | Δ | collector µs/conn | collector µs/conn versus | Δ | conn/s | conn/s versus | other traffic or rejected |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
		for i := range min(len(c.this.pairs), len(c.that.pairs)) {
			a, o := c.this.pairs[i].podnet, c.that.pairs[i].podnet
			ba, bo := a.agent.bpf.perConn(a.load.Connections), o.agent.bpf.perConn(o.load.Connections)
			ca, co := cpuPerConn(a), cpuPerConn(o)
			other := "no"
			if e := max(c.this.excluded[i], c.that.excluded[i]); e != usable {
				other = e.String()
			}
			fmt.Fprintf(b, "| %d | %.2f | %.2f | %+.2f | %.2f | %.2f | %+.2f | %.0f | %.0f | %s |\n", i+1, ba, bo, ba-bo, ca, co, ca-co, a.load.rate(), o.load.rate(), other)
		}
		fmt.Fprintf(b, "\n**Median [min–max]:** BPF %s vs %s µs per connection, Δ %s, ratio %s; collector %s vs %s µs, Δ %s, ratio %s; "+
			"podnet runs' conn/s ratio %s.\n\n",
			c.bpfThis.format("%.2f"), c.bpfThat.format("%.2f"), c.bpfDiff.format("%+.2f"), c.bpfRatio.format("%.3f"),
			c.cpuThis.format("%.2f"), c.cpuThat.format("%.2f"), c.cpuDiff.format("%+.2f"), c.cpuRatio.format("%.3f"), c.rate.format("%.3f"))
	}
}
