// Command podnet-fullload checks that podnet loses nothing at the machine's maximum connection
// rate: the lean C load generator (bench/loadgen) connects and closes as fast as it can over
// loopback inside a network namespace this program creates, while podnet-agent (logs +
// metrics, default configuration unless -config says otherwise) observes. After each run it
// compares podnet's own account with the generator's: 4 log records per connection in that
// namespace (connect, accept, close at each end), cumulative connection metrics equal to the
// generator's counts, nothing lost to a full ring, no uncovered recursion misses, and
// submitted == received + lost. It needs root; `make bench-fullload` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	self, _ := os.Executable()
	dir := filepath.Dir(self)
	agent := flag.String("agent", filepath.Join(dir, "podnet-agent"), "podnet-agent binary")
	loadgen := flag.String("loadgen", filepath.Join(dir, "podnet-loadgen"), "podnet-loadgen binary (bench/loadgen)")
	duration := flag.Duration("duration", time.Minute, "length of each run")
	runs := flag.Int("runs", 1, "how many runs")
	workers := flag.Int("workers", 2, "client and server threads of the load generator")
	config := flag.String("config", "{}", "receiver configuration as JSON (default: podnet's defaults)")
	env := flag.String("agent-env", "", "comma-separated VAR=value for podnet-agent, e.g. GOGC=400")
	results := flag.String("results", "", "if set, a markdown report is appended to this file")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "podnet-fullload: needs root (it creates network namespaces and loads eBPF)")
		os.Exit(1)
	}
	var agentEnv []string
	if *env != "" {
		agentEnv = strings.Split(*env, ",")
	}
	failed := 0
	var report []string
	fmt.Println("| run | connections | per s | failed connects | submitted | received | lost | uncovered recursion misses | dropped | podnet CPU / connection | peak RSS MiB |")
	for i := range *runs {
		r, err := fullLoadRun(runConfig{
			agent: *agent, loadgen: *loadgen, duration: *duration, workers: *workers,
			config: *config, env: agentEnv,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "podnet-fullload:", err)
			os.Exit(1)
		}
		problems := r.check()
		line := r.summary(i + 1)
		fmt.Println(line)
		if r.hiddenServer+r.hiddenClient > 0 {
			fmt.Printf("  closes the kernel ran with a PID 1 thread current, hidden from BPF (not expected): server %d, client %d\n", r.hiddenServer, r.hiddenClient)
		}
		for _, p := range problems {
			fmt.Println("  FAIL:", p)
		}
		if len(problems) > 0 {
			failed++
		}
		report = append(report, line)
	}
	if *results != "" {
		if err := appendReport(*results, *duration, *workers, *config, *env, report, failed); err != nil {
			fmt.Fprintln(os.Stderr, "podnet-fullload:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("%d passed, %d failed\n", *runs-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
