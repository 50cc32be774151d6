package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable writes the headline table: one row per scenario and workload.
func printTable(w io.Writer, sums []summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tworkload\tbaseline conn/s\trate ratio\tp50 ratio\tp99 ratio\tcollector CPU ms/1k conn\tBPF µs/conn\tevents/conn\tlost\trecursion missed\tpeak RSS MiB")
	for _, s := range sums {
		if isPeriodicOnly(s.workload) {
			continue // printPeriodic
		}
		if s.failed != nil {
			// Every cell filled: tabwriter ends a column's alignment at a row without it.
			fmt.Fprintf(tw, "%s\t%s\tNOT RUN (below)%s\n", s.scenario.name, s.workload.name(), strings.Repeat("\t—", 9))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n",
			s.scenario.name, s.workload.name(), s.baseRate.format("%.0f"), s.rate.format("%.3f"),
			s.p50.format("%.3f"), s.p99.format("%.3f"), s.cpuPer1k.format("%.2f"), s.bpfPerConn.format("%.2f"),
			s.eventsPerConn.format("%.2f"), s.lost, s.recursion, s.rssMiB.format("%.0f"))
	}
	_ = tw.Flush()
	reported := map[string]bool{}
	for _, s := range sums {
		if isPeriodicOnly(s.workload) {
			continue
		}
		if s.failed != nil {
			if !reported[s.scenario.name] {
				fmt.Fprintf(w, "%s: NOT RUN: %v\n", s.scenario.name, s.failed)
				reported[s.scenario.name] = true
			}
			continue
		}
		for _, v := range s.verdicts() {
			fmt.Fprintf(w, "%s / %s: %s\n", s.scenario.name, s.workload.name(), v)
		}
		if s.contaminated > 0 {
			fmt.Fprintf(w, "%s / %s: WARNING: another podnet instance was attached during %d of %d pairs (left out of the medians unless all were)\n",
				s.scenario.name, s.workload.name(), s.contaminated, len(s.pairs))
		}
	}
}

// writeMarkdown writes bench/results/<date>-<scenario>.md with every pair's numbers.
// cs are the scenario's comparisons with the one it names (scenario.versus), if that ran.
func writeMarkdown(dir string, sc scenario, sums []summary, cs []comparison, machine, command string, pairs int, d time.Duration) (string, error) {
	var b strings.Builder
	date := time.Now().Format("2006-01-02")
	fmt.Fprintf(&b, "# podnet overhead: %s (%s)\n\n", sc.name, date)
	fmt.Fprintf(&b, "- Machine: %s\n- Command: `%s`\n", machine, command)
	fmt.Fprintf(&b, "- podnet: `%spodnet-agent -pipelines %s -config '%s'` — %s\n", envPrefix(sc.env), sc.pipelines, sc.config, sc.about)
	fmt.Fprintf(&b, "- Method: %d pairs of %v runs (baseline = no podnet; the order inside a pair alternates; pair i of every "+
		"scenario in the run before pair i+1 of any), load between network namespaces, podnet as its own process in the root namespace. "+
		"Ratios are podnet/baseline within a pair; summaries are median [min–max] over pairs, "+
		"with a distribution-free 95%% confidence interval of the median (order statistics; 6 pairs or more): "+
		"a target inside that interval is not resolved at this machine's noise. "+
		"Collector CPU is the podnet-agent process's exact CPU time (its CPU clock, clock_gettime: the scheduler run time of its threads, "+
		"exited ones included) per 1000 connections; "+
		"BPF is the run time of the BPF programs the podnet process holds (kernel run statistics, BPF_ENABLE_STATS "+
		"on during podnet runs: run_time_ns, run_cnt) in µs per connection, spent in the observed workloads' own "+
		"syscalls and softirqs, not in podnet's process; "+
		"events, loss and recursion misses are podnet's own telemetry. Other work on the machine is noise: read the ranges.\n\n",
		pairs, d)
	for _, s := range sums {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", s.workload.name(), s.workload.describe())
		if s.failed != nil {
			fmt.Fprintf(&b, "**Not run:** %v\n\n", s.failed)
			continue
		}
		if isPeriodicOnly(s.workload) {
			writePeriodicMarkdown(&b, s)
			continue
		}
		b.WriteString("| pair | first | baseline conn/s | podnet conn/s | rate ratio | p50 µs base→podnet | p99 µs base→podnet | collector CPU ms/1k conn (exact: process CPU clock) | BPF µs/conn | BPF runs/conn | events/conn | lost | recursion missed | peak RSS MiB | other podnet attached (base/podnet) | left out |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for i, p := range s.pairs {
			first := "baseline"
			if p.podnetFirst {
				first = "podnet"
			}
			bl, pl, ag := p.base.load, p.podnet.load, p.podnet.agent
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | %.3f | %s | %s | %.2f | %.2f | %.1f | %.2f | %d | %d | %.0f | %d/%d | %s |\n",
				i+1, first, bl.rate(), pl.rate(), pl.rate()/bl.rate(), latency(bl.P50, pl.P50), latency(bl.P99, pl.P99),
				ag.cpu.Seconds()*1e6/float64(pl.Connections), ag.bpf.perConn(pl.Connections), float64(ag.bpf.runs)/float64(pl.Connections),
				float64(ag.counters.EventsReceived)/float64(pl.Connections),
				ag.counters.EventsLost, ag.counters.RecursionMisses, float64(ag.hwm)/1024, p.base.foreign, p.podnet.foreign, leftOut(s, i))
		}
		fmt.Fprintf(&b, "\n**Median [min–max]:** rate ratio %s%s, p50 ratio %s, p99 ratio %s%s, collector CPU %s ms per 1k connections, "+
			"BPF %s µs per connection (by program: %s), "+
			"%s events per connection, peak RSS %s MiB; lost %d, recursion missed %d, dropped by the pipeline %d (these four over every pair); "+
			"load errors %d baseline, %d podnet; pairs with another podnet instance attached (its programs tax every connection) %d, "+
			"with events per connection off the expected (other traffic through podnet) %d, both left out of the medians unless all were; "+
			"pairs rejected (no connection, or load errors over %.0f%%) %d; of %d.\n\n",
			s.rate.format("%.3f"), s.rate.ci(), s.p50.format("%.3f"), s.p99.format("%.3f"), s.p99.ci(), s.cpuPer1k.format("%.2f"),
			s.bpfPerConn.format("%.2f"), bpfByProgram(s.usable()),
			s.eventsPerConn.format("%.2f"), s.rssMiB.format("%.0f"), s.lost, s.recursion, s.dropped,
			s.baseErrors, s.podnetErrors, s.contaminated, s.eventsOff, 100*maxErrorFraction, s.rejected, len(s.pairs))
		for _, v := range s.verdicts() {
			fmt.Fprintf(&b, "- %s\n", v)
		}
		b.WriteString("\n")
	}
	writeComparisonMarkdown(&b, cs)
	path := filepath.Join(dir, date+"-"+fileName(sc.name)+".md")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// leftOut is why pair i is left out of the medians, "no" if it is not, "yes: …" if it is.
func leftOut(s summary, i int) string {
	switch e := s.excluded[i]; {
	case e == usable:
		return "no"
	case !e.rejected() && !slices.Contains(s.excluded, usable):
		return "no (no pair without: " + e.String() + ")"
	default:
		return "yes: " + e.String()
	}
}

// latency is "base→podnet" in µs, or "—" from a workload that measures none.
func latency(base, podnet time.Duration) string {
	if base == 0 && podnet == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f→%.1f", float64(base)/1e3, float64(podnet)/1e3)
}

// fileName makes a scenario name safe for a file name ("logs+metrics" → "logs-metrics").
func fileName(s string) string { return strings.ReplaceAll(s, "+", "-") }

// machine describes where the numbers come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%s, %d vCPU, kernel %s, load average at start %s",
		model, runtime.NumCPU(), strings.TrimSpace(string(kernel)), strings.Join(strings.Fields(string(load))[:3], " "))
}

// envPrefix is env as a shell command's prefix ("GOGC=400 "), or "".
func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}
