package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// check compares podnet's account of the run with the load generator's and returns every
// difference. A connect that failed is one event (connect); one that succeeded is four, less
// the closes the kernel hid from every BPF program (invisible.go).
func (r result) check() []string {
	var problems []string
	expect := func(what string, got, want int64) {
		if got != want {
			problems = append(problems, fmt.Sprintf("%s: %d, want %d (%+d)", what, got, want, got-want))
		}
	}
	n, failed := r.load.Connections, r.load.Errors
	ev := r.agent.NetnsEvents
	expect("podnet.tcp.connect records", ev["podnet.tcp.connect"], n+failed)
	expect("podnet.tcp.accept records", ev["podnet.tcp.accept"], n)
	expect("podnet.tcp.close records", ev["podnet.tcp.close"], 2*n-r.hiddenServer-r.hiddenClient)
	m := r.agent.NetnsMetrics
	expect("podnet.tcp.connections{client}", m["podnet.tcp.connections/client"], n+failed)
	expect("podnet.tcp.connections{server}", m["podnet.tcp.connections/server"], n)
	expect("podnet.tcp.connections.closed{client}", m["podnet.tcp.connections.closed/client"], n-r.hiddenClient)
	expect("podnet.tcp.connections.closed{server}", m["podnet.tcp.connections.closed/server"], n-r.hiddenServer)
	expect("events lost to a full ring", r.agent.EventsLost, 0)
	expect("uncovered recursion misses", r.agent.RecursionMisses, 0)
	expect("events dropped by the pipeline", r.agent.EventsDropped, 0)
	expect("closes of untracked connections", r.agent.Untracked, 0)
	expect("events submitted - received - lost", r.agent.EventsSubmitted-r.agent.EventsReceived-r.agent.EventsLost, 0)
	return problems
}

func (r result) summary(run int) string {
	secs := float64(r.load.ElapsedNs) / 1e9
	perConn := time.Duration(0)
	if r.load.Connections > 0 {
		perConn = r.agentCPU / time.Duration(r.load.Connections)
	}
	return fmt.Sprintf("| %d | %d | %.0f | %d | %d | %d | %d | %d (%d covered) | %d | %v | %d |",
		run, r.load.Connections, float64(r.load.Connections)/secs, r.load.Errors,
		r.agent.EventsSubmitted, r.agent.EventsReceived, r.agent.EventsLost, r.agent.RecursionMisses, r.agent.RecursionCovered,
		r.agent.EventsDropped, perConn, r.peakRSS/1024)
}

func appendReport(path string, d time.Duration, workers int, config, env string, rows []string, failed int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	host, _ := os.Hostname()
	_, err = fmt.Fprintf(f, "\n## %s on %s: %d run(s) of %v, %d workers, config %s, agent env %q: %d failed\n\n"+
		"| run | connections | per s | failed connects | submitted | received | lost | uncovered recursion misses | dropped | podnet CPU / connection | peak RSS MiB |\n"+
		"|---|---|---|---|---|---|---|---|---|---|---|\n%s\n",
		time.Now().UTC().Format(time.RFC3339), host, len(rows), d, workers, config, env, failed, strings.Join(rows, "\n"))
	return err
}
