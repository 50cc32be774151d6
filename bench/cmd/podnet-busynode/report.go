package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type report struct {
	o          options
	command    string
	phases     []phaseResult
	buildTime  time.Duration
	slabMiB    int64 // kernel slab growth: sockets, namespaces, cgroups
	holdersMiB int64
}

func (r report) write(path string) error {
	var b strings.Builder
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "# Busy node (issue 17 item 3): %d pods, %d open connections\n\n", r.o.pods, r.o.conns)
	fmt.Fprintf(&b, "Command (root, from the repository root): `make bench-busynode` = `%s`\n\n", r.command)
	fmt.Fprintf(&b, "Machine: %s, kernel %s, %d vCPU, %s. Other sessions ran tests at the same time: the load average is beside every phase.\n\n",
		host, strings.TrimSpace(string(kernel)), runtime.NumCPU(), time.Now().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "The busy node: %d pods in pairs (server pod, client pod, a veth between them), each with a kubelet-style cgroup "+
		"(systemd driver, containerd scope) and one process holding its connections (bench/loadgen/holder.c): %d connections, "+
		"%d sockets. Built in %.1f s; kernel slab grew by %d MiB (sockets, namespaces; others' activity moves it too), "+
		"the pods' processes hold %d MiB resident.\n\n",
		r.o.pods, r.o.conns, 2*r.o.conns, r.buildTime.Seconds(), r.slabMiB, r.holdersMiB)
	b.WriteString("| | " + strings.Join(names(r.phases), " | ") + " |\n|---|" + strings.Repeat("---|", len(r.phases)) + "\n")
	row := func(label string, f func(p phaseResult) string) {
		cells := make([]string, len(r.phases))
		for i, p := range r.phases {
			cells[i] = f(p)
		}
		fmt.Fprintf(&b, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	row("load average (1/5/15 min) before → after", func(p phaseResult) string { return p.loadBefore + " → " + p.loadAfter })
	row("podnet Start (attached, first /proc scan)", func(p phaseResult) string { return fmt.Sprintf("%.0f ms", p.start.StartMillis) })
	row("… until the open connections are found", func(p phaseResult) string { return fmt.Sprintf("%.0f ms", p.start.FoundMillis) })
	row("log records at start (found connections)", func(p phaseResult) string { return strconv.FormatInt(p.start.Records, 10) })
	row("podnet RSS after start (peak)", func(p phaseResult) string {
		return fmt.Sprintf("%.1f MiB (%.1f)", float64(p.start.RSSKiB)/1024, float64(p.start.HWMKiB)/1024)
	})
	row("podnet RSS 20 s later", func(p phaseResult) string { return fmt.Sprintf("%.1f MiB", float64(p.rssIdleKiB)/1024) })
	row("podnet Go heap in use", func(p phaseResult) string { return fmt.Sprintf("%.1f MiB", float64(p.start.HeapInuse)/(1<<20)) })
	row("/proc scan: wall per scan", func(p phaseResult) string { return fmt.Sprintf("%.1f ms", p.scan["ns/op"]/1e6) })
	row("/proc scan: CPU per scan", func(p phaseResult) string { return fmt.Sprintf("%.1f ms", p.scan["cpu-ns/op"]/1e6) })
	row("/proc scan: namespaces, cgroups", func(p phaseResult) string { return fmt.Sprintf("%.0f, %.0f", p.scan["netns"], p.scan["cgroups"]) })
	row("podnet idle CPU (periodic scans, 10 s)", func(p phaseResult) string { return fmt.Sprintf("%.2f%% of a CPU", float64(p.idleCPU)/1e7) })
	row("podnet CPU per short connection (logs+metrics)", func(p phaseResult) string { return fmt.Sprintf("%.1f µs", float64(p.cpuPerConn)/1e3) })
	row("short connections/s while measured (paced)", func(p phaseResult) string { return fmt.Sprintf("%.0f", p.connRate) })
	for _, v := range []string{"none", "events", "aggregate"} {
		row("kernel CPU per connection, "+v, func(p phaseResult) string { return fmt.Sprintf("%.1f µs", p.kernel[v]/1e3) })
	}
	row("kernel events/none, aggregate/none", func(p phaseResult) string {
		return fmt.Sprintf("%.3f, %.3f", p.kernel["events"]/p.kernel["none"], p.kernel["aggregate"]/p.kernel["none"])
	})
	row("BPF (logs+metrics programs): ns per connection", func(p phaseResult) string { return fmt.Sprintf("%.0f ns", p.bpf["ns-in-bpf/conn"]) })
	row("BPF: runs per connection, ns per run", func(p phaseResult) string {
		return fmt.Sprintf("%.1f, %.0f ns", p.bpf["runs/conn"], p.bpf["ns-in-bpf/conn"]/p.bpf["runs/conn"])
	})
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func names(ps []phaseResult) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name + " node"
	}
	return out
}
