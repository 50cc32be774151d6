package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// phaseResult is one phase's measurements.
type phaseResult struct {
	name       string
	loadBefore string
	loadAfter  string
	scan       map[string]float64 // procscan BenchmarkScan: ns/op, cpu-ns/op, netns, cgroups
	kernel     map[string]float64 // cpu-ns/conn by variant: none, events, aggregate
	bpf        map[string]float64 // logs+metrics programs: ns-in-bpf/conn, runs/conn
	start      startup
	rssIdleKiB int64         // podnet's RSS after idleWindow more
	idleCPU    time.Duration // podnet's CPU per second with no traffic (its periodic scans)
	cpuPerConn time.Duration // podnet's CPU per short connection, idle CPU subtracted
	connRate   float64
}

type measurer struct {
	self, loadNS string
	o            options
}

// idleWindow spans two default attribution refreshes (10 s), so podnet's idle CPU includes
// its periodic scans.
const idleWindow = 20 * time.Second

func (m *measurer) phase(name string) (phaseResult, error) {
	r := phaseResult{name: name, loadBefore: loadAvg()}
	scan, err := goBench(m.o.scanBench, "BenchmarkScan$", "20x")
	if err != nil {
		return r, err
	}
	r.scan = scan["BenchmarkScan"]
	kern, err := goBench(m.o.kernelBench, "BenchmarkKernelCPUPerConnection", "30000x")
	if err != nil {
		return r, err
	}
	r.kernel = map[string]float64{}
	for _, v := range []string{"none", "events", "aggregate"} {
		r.kernel[v] = kern["BenchmarkKernelCPUPerConnection/"+v]["cpu-ns/conn"]
	}
	// The BPF run statistics count only the programs' runs: steadier than machine-wide CPU
	// when others share the machine (their connections add runs, not cost per run).
	cost, err := goBench(m.o.kernelBench, `BenchmarkKernelCostPerConnection/^events\+aggregate$`, "30000x")
	if err != nil {
		return r, err
	}
	r.bpf = cost["BenchmarkKernelCostPerConnection/events+aggregate"]
	if err := m.agent(&r); err != nil {
		return r, err
	}
	r.loadAfter = loadAvg()
	return r, nil
}

// agent runs podnet in its own process (this program with -agent), reads its start-up
// figures, then its CPU idle and under short connections.
func (m *measurer) agent(r *phaseResult) error {
	cmd := exec.Command(m.self, "-agent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := json.Unmarshal(line, &r.start); err != nil {
		return fmt.Errorf("agent said %q: %w", line, err)
	}
	pid := cmd.Process.Pid
	c0, _ := processCPU(pid)
	time.Sleep(idleWindow)
	c1, _ := processCPU(pid)
	r.idleCPU = (c1 - c0) * time.Second / idleWindow
	r.rssIdleKiB = kiBField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	begin := time.Now()
	if err := shortConnections(m.loadNS, m.o.short, m.o.rate); err != nil {
		return err
	}
	wall := time.Since(begin)
	time.Sleep(time.Second) // the last poll and conversion
	c2, _ := processCPU(pid)
	busy := c2 - c1 - r.idleCPU*(wall+time.Second)/time.Second
	r.cpuPerConn = busy / time.Duration(m.o.short)
	r.connRate = float64(m.o.short) / wall.Seconds()
	return nil
}
