package k8smeta

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

var nodeName = regexp.MustCompile(`spec\.nodeName=node-\d+`)

// loadReport is the markdown the bench writes to bench/results: the table, then the requests
// each mode's watchers made (which resources, list and watch), so that a reader sees what
// was watched.
func loadReport(lc *loadCluster, runs []loadRun) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "%s, %d vCPU, load average %s; %d pods on %d nodes, %d Services (every other pod behind one), %d watchers (one per node), %d pods replaced one by one.\n\n",
		time.Now().UTC().Format(time.DateOnly), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "),
		lc.pods, lc.nodes, lc.services, *loadWatchers, *loadChurn)
	b.WriteString("| mode | synced | initial KiB (all watchers) | initial KiB per watcher | API server CPU s, initial | bytes per replaced pod (all watchers) | API server CPU ms per replaced pod | idle B/s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		b.WriteString(r.row(*loadWatchers, *loadChurn) + "\n")
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "\nRequests of %s (all watchers; each node's own name as <node>):\n", r.mode)
		calls := map[string]int{}
		for k, n := range r.requests {
			sel := nodeName.ReplaceAllString(k.FieldSelector, "spec.nodeName=<node>")
			calls[fmt.Sprintf("%s %s?fieldSelector=%s", k.Verb, k.Path, sel)] += n
		}
		for _, call := range slices.Sorted(maps.Keys(calls)) {
			fmt.Fprintf(&b, "- %s: %d\n", call, calls[call])
		}
	}
	return b.String()
}
