// Command podnet-busynode measures podnet on a busy node (issue 17): 500 pods (network
// namespaces with kubelet-style cgroups and one process each) holding 50k open connections.
// It measures, with the node idle and then busy: podnet's start (Start, and the scan for
// connections already open), its RSS and Go heap, the /proc scan per refresh (procscan's
// BenchmarkScan, wall and CPU), the kernel's CPU per connection (the kernel package's
// BenchmarkKernelCPUPerConnection) and podnet's own CPU per short connection. It writes a
// Markdown report. Needs root; everything it creates is removed on exit or interrupt.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-agent" {
		if err := runAgent(); err != nil {
			fmt.Fprintln(os.Stderr, "podnet-busynode -agent:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.pods, "pods", 500, "pods (half servers, half clients; even)")
	flag.IntVar(&o.conns, "conns", 50000, "open connections, spread evenly over the pod pairs")
	flag.IntVar(&o.short, "short", 20000, "short connections driven while podnet runs, for its CPU per connection")
	flag.IntVar(&o.rate, "rate", 2000, "short connections per second (the same in every phase)")
	flag.StringVar(&o.holder, "holder", "bin/bench/podnet-holder", "the holder program (bench/loadgen/holder.c)")
	flag.StringVar(&o.scanBench, "scan-bench", "bin/bench/procscan.test", "procscan's compiled test binary")
	flag.StringVar(&o.kernelBench, "kernel-bench", "bin/bench/kernel.test", "the kernel package's compiled test binary")
	flag.StringVar(&o.out, "out", "bench/results/"+time.Now().Format("2006-01-02")+"-issue17-busy-node.md", "report file")
	flag.Parse()
	if err := run1(o); err != nil {
		fmt.Fprintln(os.Stderr, "podnet-busynode:", err)
		os.Exit(1)
	}
}

type options struct {
	pods, conns, short, rate            int
	holder, scanBench, kernelBench, out string
}

func run1(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces and cgroups and loads eBPF")
	}
	if o.pods < 2 || o.pods%2 != 0 || o.pods/2 > 250 {
		return fmt.Errorf("-pods %d: an even number from 2 to 500", o.pods)
	}
	// Two pipes per holder (each holder, one pod's connections, stays under the default 1024).
	// The soft limit is raised to the hard one: raising that needs CAP_SYS_RESOURCE.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur = lim.Max; lim.Max < uint64(4*o.pods+256) {
		return fmt.Errorf("open-file limit %d is too low for %d pods' pipes", lim.Max, o.pods)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	n, err := newNode()
	if err != nil {
		return err
	}
	var once sync.Once
	cleanup := func() { once.Do(n.cleanup) }
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "podnet-busynode: interrupted, cleaning up")
		cleanup()
		os.Exit(1)
	}()
	loadNS, err := n.newLoadNetns()
	if err != nil {
		return err
	}
	m := &measurer{self: self, loadNS: loadNS, o: o}

	rep := report{o: o, command: strings.Join(os.Args, " ")}
	fmt.Fprintln(os.Stderr, "phase: idle node")
	idle, err := m.phase("idle")
	if err != nil {
		return err
	}
	rep.phases = append(rep.phases, idle)

	slabBefore := kiBField("/proc/meminfo", "Slab:")
	begin := time.Now()
	fmt.Fprintf(os.Stderr, "building %d pods with %d connections\n", o.pods, o.conns)
	if err := n.build(o.pods/2, o.conns/(o.pods/2), o.holder); err != nil {
		return err
	}
	rep.buildTime, rep.slabMiB, rep.holdersMiB = time.Since(begin), (kiBField("/proc/meminfo", "Slab:")-slabBefore)/1024, n.holdersRSS()/1024
	time.Sleep(2 * time.Second)
	fmt.Fprintln(os.Stderr, "phase: busy node")
	busy, err := m.phase("busy")
	if err != nil {
		return err
	}
	rep.phases = append(rep.phases, busy)
	cleanup()
	return rep.write(o.out)
}
