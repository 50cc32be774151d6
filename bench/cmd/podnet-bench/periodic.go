package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// periodicTarget is issue 12's budget: podnet CPU per metrics interval per 10k open sockets.
const periodicTarget = 1.0 // ms

// metricsInterval is the metrics_interval a scenario sets, which the per-interval figure needs.
func metricsInterval(sc scenario) (time.Duration, error) {
	var c struct {
		MetricsInterval string `json:"metrics_interval"`
	}
	if err := json.Unmarshal([]byte(sc.config), &c); err != nil {
		return 0, fmt.Errorf("scenario %s: %w", sc.name, err)
	}
	if c.MetricsInterval == "" {
		return 0, fmt.Errorf("scenario %s: long-lived-quiet needs metrics_interval in its config", sc.name)
	}
	return time.ParseDuration(c.MetricsInterval)
}

// settleTime is how long a run with held connections waits after podnet is ready: the start-up
// scan finds them all, and the first interval after it emits their series for the first time.
func settleTime(sc scenario) time.Duration {
	iv, err := metricsInterval(sc)
	if err != nil {
		iv = 10 * time.Second // the receiver's default
	}
	return max(2*time.Second, iv+time.Second)
}

// msPerInterval is podnet's exact CPU in ms per metrics interval iv over one run's window.
func msPerInterval(ag *agentRun, iv time.Duration) float64 {
	if ag.window <= 0 {
		return 0
	}
	return float64(ag.cpu) / 1e6 * float64(iv) / float64(ag.window)
}

// per10k is what 10k open sockets cost podnet per interval: the run with the connections held
// less the run without them, over the difference in open sockets.
func per10k(heldMs, floorMs float64, heldSockets, floorSockets int64) float64 {
	if heldSockets <= floorSockets {
		return 0
	}
	return (heldMs - floorMs) * 1e4 / float64(heldSockets-floorSockets)
}

// summarizePeriodic fills what a periodic-only workload measures: the pair's "baseline" is the
// run without the held connections (the floor), its "podnet" run the one with them.
func summarizePeriodic(s summary, pairs []pair) summary {
	iv, _ := metricsInterval(s.scenario) // checked when the scenario was chosen
	var floor, held, marginal, sockets, tw, rss []float64
	for _, p := range pairs {
		f, h := p.base, p.podnet
		fMs, hMs := msPerInterval(f.agent, iv), msPerInterval(h.agent, iv)
		floor, held = append(floor, fMs), append(held, hMs)
		marginal = append(marginal, per10k(hMs, fMs, h.load.OpenSockets, f.load.OpenSockets))
		sockets = append(sockets, float64(h.load.OpenSockets-f.load.OpenSockets))
		tw = append(tw, float64(h.load.TimeWait))
		rss = append(rss, float64(h.agent.hwm)/1024)
	}
	s.floorPerInterval, s.perInterval, s.perInterval10k = spreadOf(floor), spreadOf(held), spreadOf(marginal)
	s.sockets, s.timeWait, s.rssMiB = spreadOf(sockets), spreadOf(tw), spreadOf(rss)
	return s
}

// periodicMethod is the report's account of the per-interval figure.
const periodicMethod = "CPU per metrics interval per 10k open sockets, from long-lived-quiet pairs: both runs of a pair have podnet attached " +
	"and no load; one holds the connections open (opened before podnet started), the other has them closed (the floor: " +
	"Go runtime, ring polling, metric emission); the order alternates. CPU is podnet's exact CPU (the process's CPU clock, " +
	"clock_gettime: its threads' scheduler run time) over a window that starts after podnet's start-up scan and first emission, " +
	"in ms per metrics interval. Per 10k sockets = (held − floor) per interval × 10k / (TCP sockets open in the two namespaces, " +
	"held − floor; /proc/net/sockstat inuse, which counts both ends of every connection)."

// printPeriodic writes the periodic-only rows, which the headline table leaves out.
func printPeriodic(w io.Writer, sums []summary) {
	var rows []summary
	for _, s := range sums {
		if isPeriodicOnly(s.workload) {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+periodicMethod)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tworkload\theld sockets\tTIME_WAIT\tfloor CPU ms/interval\theld CPU ms/interval\tCPU ms/interval/10k sockets\tlost\tpeak RSS MiB")
	for _, s := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t%s\n", s.scenario.name, s.workload.name(), s.sockets.med, s.timeWait.med,
			s.floorPerInterval.format("%.3f"), s.perInterval.format("%.3f"), s.perInterval10k.format("%.3f"), s.lost, s.rssMiB.format("%.0f"))
	}
	_ = tw.Flush()
	for _, s := range rows {
		fmt.Fprintf(w, "%s / %s: %s\n", s.scenario.name, s.workload.name(), periodicVerdict(s))
		if s.contaminated > 0 {
			fmt.Fprintf(w, "%s / %s: WARNING: another podnet instance was attached during %d of %d pairs (left out of the medians unless all were)\n",
				s.scenario.name, s.workload.name(), s.contaminated, len(s.pairs))
		}
	}
}

func periodicVerdict(s summary) string {
	return verdict("CPU ms/interval/10k sockets", s.perInterval10k, periodicTarget, "≤")
}

// writePeriodicMarkdown is a periodic-only workload's section of bench/results.
func writePeriodicMarkdown(b *strings.Builder, s summary) {
	iv, _ := metricsInterval(s.scenario)
	b.WriteString("| pair | first | open sockets floor→held | TIME_WAIT floor→held | window s floor/held | CPU ms/interval floor→held | CPU ms/interval/10k sockets | lost | peak RSS MiB held | other podnet attached (floor/held) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for i, p := range s.pairs {
		first := "floor"
		if p.podnetFirst {
			first = "held"
		}
		f, h := p.base, p.podnet
		fMs, hMs := msPerInterval(f.agent, iv), msPerInterval(h.agent, iv)
		fmt.Fprintf(b, "| %d | %s | %d→%d | %d→%d | %.2f/%.2f | %.3f→%.3f | %.3f | %d | %.0f | %d/%d |\n", i+1, first,
			f.load.OpenSockets, h.load.OpenSockets, f.load.TimeWait, h.load.TimeWait, f.agent.window.Seconds(), h.agent.window.Seconds(),
			fMs, hMs, per10k(hMs, fMs, h.load.OpenSockets, f.load.OpenSockets),
			f.agent.counters.EventsLost+h.agent.counters.EventsLost, float64(h.agent.hwm)/1024, f.foreign, h.foreign)
	}
	fmt.Fprintf(b, "\n%s\n\n**Median [min–max]:** metrics interval %v; CPU ms per interval %s without the held connections, %s with them; "+
		"%s ms per interval per 10k open sockets%s; lost %d, dropped by the pipeline %d; pairs with another podnet instance attached: %d of %d.\n\n- %s\n\n",
		periodicMethod, iv, s.floorPerInterval.format("%.3f"), s.perInterval.format("%.3f"), s.perInterval10k.format("%.3f"),
		s.perInterval10k.ci(), s.lost, s.dropped, s.contaminated, len(s.pairs), periodicVerdict(s))
}

func isPeriodicOnly(w workload) bool {
	h, ok := w.(holder)
	return ok && h.periodicOnly()
}
