// Command podnet-agent runs the podnet receiver on its own, as a collector would, for the
// bench harness: it is the "podnet attached" side of each baseline/podnet pair. It prints
// "ready" once the kernel programs are attached, and on SIGTERM (or when its stdin closes,
// so it never outlives the harness) it shuts the receiver down and prints its counters as
// one JSON line.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	pipelines := flag.String("pipelines", "logs,metrics", "pipelines fed by podnet: metrics or logs,metrics")
	config := flag.String("config", "{}", "receiver configuration as JSON, e.g. {\"hooks\":\"tp_btf\"}")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	maxLifetime := flag.Duration("max-lifetime", 30*time.Minute, "exit by itself after this long")
	countNetns := flag.Int64("count-netns", 0, "network namespace inode whose log records and connection metrics are counted apart")
	flag.Parse()
	if err := run(strings.Split(*pipelines, ","), *config, *cpuProfile, *maxLifetime, *countNetns); err != nil {
		fmt.Fprintln(os.Stderr, "podnet-agent:", err)
		os.Exit(1)
	}
}

func run(pipelines []string, config, cpuProfile string, maxLifetime time.Duration, countNetns int64) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	a, err := newAgent(pipelines, config, countNetns)
	if err != nil {
		return err
	}
	if err := a.start(context.Background()); err != nil {
		return err
	}
	fmt.Println("ready")
	waitForStop(maxLifetime)
	if err := a.shutdown(context.Background()); err != nil {
		return err
	}
	counters, err := a.counters(context.Background())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(counters)
}

// waitForStop returns on SIGTERM/SIGINT, when stdin closes, or after maxLifetime.
func waitForStop(maxLifetime time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = os.Stdin.Read(make([]byte, 1)) // the harness never writes: any return is EOF
		close(stdinClosed)
	}()
	select {
	case <-sig:
	case <-stdinClosed:
	case <-time.After(maxLifetime):
	}
}
