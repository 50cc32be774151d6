// Command podnet-bench measures what podnet costs the workloads it observes. In one run it
// alternates baseline runs (no podnet) and runs with podnet attached (bench/cmd/podnet-agent
// as its own process) on short-connection load between two network namespaces, and reports
// medians and ranges over the pairs. `make bench` runs it; it needs root.
//
// It is also its own load generator and server (subcommands load and serve), and the holder
// of the long-lived workloads' connections (hold, hold-serve), re-run inside the namespaces.
package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// scenarios are podnet's configurations under test. metrics_interval is 1s (not the 10s
// default) so the metrics pipeline's emission cost falls inside every run.
var scenarios = []scenario{
	{
		name: "metrics-only", pipelines: "metrics", config: `{"metrics_interval":"1s"}`,
		about:   "metrics pipeline only; metrics_aggregation auto = counted in the kernel",
		targets: targets{minRate: 0.99, maxP99: 1.02},
	},
	{
		name: "metrics-only-events", pipelines: "metrics", config: `{"metrics_interval":"1s","metrics_aggregation":"events"}`,
		about:   "metrics pipeline only, aggregated in user space from the per-event ring buffer",
		targets: targets{minRate: 0.99, maxP99: 1.02},
	},
	{
		name: "logs+metrics", pipelines: "logs,metrics", config: `{"metrics_interval":"1s"}`,
		about:   "a log record per event plus metrics; both serialised to OTLP protobuf and discarded",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true},
	},
	{
		// The Go GC marks every in-flight record: at GOGC=100 it is 30-40% of podnet's CPU
		// with logs. examples/ deploy GOGC=400 with GOMEMLIMIT as the ceiling.
		name: "logs+metrics-gogc400", pipelines: "logs,metrics", config: `{"metrics_interval":"1s"}`, env: []string{"GOGC=400"},
		about:   "as logs+metrics, with GOGC=400 in the collector's environment, as examples/ deploy it",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true},
	},
	{
		name: "logs+metrics-sampled", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","logs":{"sampling":{"one_in":100}}}`,
		about:   "as logs+metrics, with logs sampled in the kernel: 1 connection in 100 and every abnormal one; metrics stay exact",
		targets: targets{minRate: 0.99, maxP99: 1.02, zeroLoss: true},
	},
	{
		name: "logs+metrics-noprocess", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","logs":{"process_attributes":false}}`,
		about:   "as logs+metrics, without process attributes (no syscall hooks)",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true},
	},
	{
		name: "logs+metrics-sampled-noprocess", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","logs":{"sampling":{"one_in":100},"process_attributes":false}}`,
		about:   "as logs+metrics-sampled, without process attributes (no syscall hooks): the cheapest logs",
		targets: targets{minRate: 0.99, maxP99: 1.02, zeroLoss: true},
	},
	// Issue 14: what following connections to Services to their backend costs, each "on" compared
	// pair by pair with its "off" (run both, with loadgen-service and loadgen-pod). Both name the
	// mode: the receiver's default (auto) is on, in the namespace of pid 1.
	{
		name: "metrics-only-backends-off", pipelines: "metrics", config: `{"metrics_interval":"1s","service_backends":{"mode":"off"}}`,
		about:   "as metrics-only, service_backends off",
		targets: targets{minRate: 0.99, maxP99: 1.02}, byName: true,
	},
	{
		name: "metrics-only-backends-on", pipelines: "metrics", config: `{"metrics_interval":"1s","service_backends":{"mode":"on","node_netns":"` + nodeNetnsVar + `"}}`,
		about:   "as metrics-only, service_backends on in the routed node's namespace (" + nodeNetnsVar + "): its netfilter program at POST_ROUTING, the client's check at handshake end",
		targets: targets{minRate: 0.99, maxP99: 1.02}, byName: true, versus: "metrics-only-backends-off",
	},
	// Issue 17: the reader of one ring per CPU against the shared ring's (run both).
	{
		name: "logs+metrics-per-cpu-rings", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","ring_buffers":"per_cpu"}`,
		about:   "as logs+metrics, with a ring buffer per CPU (ring_buffers: per_cpu)",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true}, byName: true, versus: "logs+metrics",
	},
	// Issue 18: what naming external peers by DNS costs, "on" compared pair by pair with "off"
	// (run both; go-bulk for the cost per byte moved, loadgen and go-connect per connection).
	// The DNS program is loaded only where something carries server.address: logs, or metrics
	// with dns_names.metric_attribute; metrics-only without it is metrics-only.
	{
		name: "logs+metrics-dns-off", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","dns_names":{"mode":"off"}}`,
		about:   "as logs+metrics, dns_names off",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true}, byName: true,
	},
	{
		name: "logs+metrics-dns-on", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","dns_names":{"mode":"auto"}}`,
		about:   "as logs+metrics, dns_names auto (on: the agent runs as root): its cgroup_skb program on every packet delivered to a socket",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true}, byName: true, versus: "logs+metrics-dns-off",
	},
	{
		name: "metrics-only-dns-on", pipelines: "metrics", config: `{"metrics_interval":"1s","dns_names":{"mode":"auto","metric_attribute":true}}`,
		about:   "as metrics-only, with server.address on the metrics (dns_names.metric_attribute): the DNS program loaded",
		targets: targets{minRate: 0.99, maxP99: 1.02}, byName: true, versus: "metrics-only",
	},
	{
		name: "logs+metrics-backends-off", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","service_backends":{"mode":"off"}}`,
		about:   "as logs+metrics, service_backends off",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true}, byName: true,
	},
	{
		name: "logs+metrics-backends-on", pipelines: "logs,metrics", config: `{"metrics_interval":"1s","service_backends":{"mode":"on","node_netns":"` + nodeNetnsVar + `"}}`,
		about:   "as logs+metrics, service_backends on in the routed node's namespace (" + nodeNetnsVar + "): a Service client's records name the backend",
		targets: targets{minRate: 0.97, maxP99: 1.05, zeroLoss: true}, byName: true, versus: "logs+metrics-backends-off",
	},
}

func main() {
	subcommands := map[string]func([]string) error{"serve": serveMain, "load": loadMain, "hold-serve": holdServeMain, "hold": holdMain}
	if sub := subcommands[firstArg()]; sub != nil {
		if err := sub(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	if err := benchMain(); err != nil {
		fmt.Fprintln(os.Stderr, "podnet-bench:", err)
		os.Exit(1)
	}
}

func benchMain() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	agent := flag.String("agent", filepath.Join(filepath.Dir(self), "podnet-agent"), "podnet-agent binary")
	pairs := flag.Int("pairs", 16, "baseline/podnet pairs per scenario and workload (6 or more give a confidence interval)")
	duration := flag.Duration("duration", 2*time.Second, "length of each run")
	workers := flag.Int("workers", 2, "Go load generator: concurrent connections")
	wrkConns := flag.Int("wrk-connections", 8, "wrk: concurrent connections")
	scenarioNames := flag.String("scenarios", names(scenarios, false), "comma-separated scenarios (also "+names(scenarios, true)+")")
	workloadNames := flag.String("workloads", "loadgen,go-connect,go-request,nginx-wrk", "comma-separated workloads (also long-lived-quiet, long-lived, loadgen-service, loadgen-pod, go-bulk)")
	serviceBackends := flag.Int("service-backends", 3, "loadgen-service: backend pods behind the Service")
	loadgen := flag.String("loadgen", filepath.Join(filepath.Dir(self), "podnet-loadgen"), "the C load generator (bench/loadgen), for the loadgen workload")
	loadgenWorkers := flag.Int("loadgen-workers", 2, "loadgen: client threads, and as many server threads")
	idle := flag.Int("idle", 10000, "long-lived workloads: idle connections held open")
	busy := flag.Int("busy", 200, "long-lived workloads: busy connections held open")
	busySize := flag.Int("busy-bytes", 4096, "long-lived workloads: bytes a busy connection's client writes each -busy-every")
	busyEvery := flag.Duration("busy-every", 10*time.Millisecond, "long-lived workloads: time between a busy connection's writes")
	quietDuration := flag.Duration("quiet-duration", 10*time.Second, "length of each long-lived-quiet run (many metrics intervals: the figure is per interval)")
	results := flag.String("results", "bench/results", "directory for <date>-<scenario>.md")
	profiles := flag.String("profile-dir", "", "if set, a CPU profile of every podnet run is written here")
	agentEnv := flag.String("agent-env", "", "comma-separated VAR=value added to every podnet-agent's environment, e.g. GOGC=200 (write to another -results directory: the files are named by scenario)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("needs root (eBPF, network namespaces): sudo make bench")
	}

	tmp, err := os.MkdirTemp("", "podnet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var loads []workload
	for _, n := range strings.Split(*workloadNames, ",") {
		switch n {
		case "loadgen":
			if _, err := os.Stat(*loadgen); err != nil {
				fmt.Fprintf(os.Stderr, "\n*** SKIPPING loadgen: %v (make bench builds it) ***\n\n", err)
				continue
			}
			loads = append(loads, loadgenWorkload{path: *loadgen, workers: *loadgenWorkers})
		case "loadgen-service", "loadgen-pod":
			if _, err := os.Stat(*loadgen); err != nil {
				return fmt.Errorf("%s: %w (make bench builds it)", n, err)
			}
			loads = append(loads, routedLoadgenWorkload{path: *loadgen, workers: *loadgenWorkers, service: n == "loadgen-service"})
		case "go-connect":
			loads = append(loads, goWorkload{mode: modeConnect, workers: *workers, self: self})
		case "go-request":
			loads = append(loads, goWorkload{mode: modeRequest, workers: *workers, self: self})
		case "go-bulk":
			loads = append(loads, goWorkload{mode: modeBulk, workers: *workers, self: self})
		case "nginx-wrk":
			if why := nginxAvailable(); why != "" {
				fmt.Fprintf(os.Stderr, "\n*** SKIPPING nginx-wrk: %s ***\n\n", why)
				continue
			}
			loads = append(loads, nginxWorkload{connections: *wrkConns, dir: tmp})
		case "long-lived-quiet", "long-lived":
			w := &longLivedWorkload{idle: *idle, busy: *busy, size: *busySize, every: *busyEvery, self: self}
			if n == "long-lived" {
				w.churn = &goWorkload{mode: modeConnect, workers: *workers, self: self}
			}
			loads = append(loads, w)
		default:
			return fmt.Errorf("-workloads: unknown %q", n)
		}
	}
	var chosen []scenario
	for _, n := range strings.Split(*scenarioNames, ",") {
		i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == n })
		if i < 0 {
			return fmt.Errorf("-scenarios: unknown scenario %q (%s,%s)", n, names(scenarios, false), names(scenarios, true))
		}
		sc := scenarios[i]
		if *agentEnv != "" {
			sc.env = append(slices.Clone(sc.env), strings.Split(*agentEnv, ",")...)
		}
		if _, err := metricsInterval(sc); err != nil && strings.Contains(*workloadNames, "long-lived-quiet") {
			return err
		}
		chosen = append(chosen, sc)
	}

	routed := 0 // backends of the routed node; none unless a workload or scenario uses it
	if slices.ContainsFunc(loads, func(w workload) bool { _, ok := w.(routedLoadgenWorkload); return ok }) ||
		slices.ContainsFunc(chosen, func(sc scenario) bool { return strings.Contains(sc.config, nodeNetnsVar) }) {
		routed = max(*serviceBackends, 1)
	}
	p, err := newPods(routed)
	if err != nil {
		return err
	}
	defer p.delete()
	// An interrupted run still removes its namespaces; children die with their stdin.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; p.delete(); os.RemoveAll(tmp); os.Exit(130) }()

	host := machine()
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			return fmt.Errorf("-profile-dir: %w", err)
		}
	}
	r := &runner{pods: p, agent: *agent, duration: *duration, profileDir: *profiles}
	bySc := map[string][]summary{}
	var all []summary
	// failed holds the scenarios whose agent did not start: they are not tried again.
	failed := map[string]error{}
	for _, w := range loads {
		r.duration = *duration
		if isPeriodicOnly(w) {
			r.duration = *quietDuration
		}
		stop, err := w.start(p)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name(), err)
		}
		ps, err := r.measure(w, chosen, *pairs, failed)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", w.name(), err)
		}
		for _, sc := range chosen {
			s := summary{scenario: sc, workload: w, failed: failed[sc.name]}
			if s.failed == nil {
				s = summarize(sc, w, ps[sc.name])
			}
			bySc[sc.name], all = append(bySc[sc.name], s), append(all, s)
		}
	}

	fmt.Printf("\n%s\n%d pairs of %v per row; median [min–max] over pairs; ratios podnet/baseline\n\n", host, *pairs, *duration)
	printTable(os.Stdout, all)
	printPeriodic(os.Stdout, all)
	cs := comparisons(all)
	printComparisons(os.Stdout, cs)
	if err := os.MkdirAll(*results, 0o755); err != nil {
		return err
	}
	command := strings.Join(os.Args, " ")
	for _, sc := range chosen {
		if !slices.ContainsFunc(bySc[sc.name], func(s summary) bool { return s.failed == nil }) {
			continue // no numbers: nothing to write over an earlier result with
		}
		mine := slices.DeleteFunc(slices.Clone(cs), func(c comparison) bool { return c.this.scenario.name != sc.name })
		path, err := writeMarkdown(*results, sc, bySc[sc.name], mine, host, command, *pairs, *duration)
		if err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d scenario(s) did not run: %s", len(failed), strings.Join(slices.Sorted(maps.Keys(failed)), ", "))
	}
	return nil
}

func firstArg() string {
	if len(os.Args) < 2 {
		return ""
	}
	return os.Args[1]
}

// names are the scenarios run by default, or those run only by name (byName).
func names(scs []scenario, byName bool) string {
	var n []string
	for _, sc := range scs {
		if sc.byName == byName {
			n = append(n, sc.name)
		}
	}
	return strings.Join(n, ",")
}
