// Package agentproc runs bench/cmd/podnet-agent as its own process, as podnet runs in a real
// collector, so that its CPU and memory are measured apart from the load: the bench harness and
// the full-load check both use it.
package agentproc // import "github.com/podnet/podnet/bench/internal/agentproc"

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bench/internal/agentstats"
)

// Proc is a running podnet-agent: podnet as a separate process, as it is in a real
// collector, so its CPU and memory are measured apart from the load.
type Proc struct {
	cmd   *exec.Cmd
	stdin io.Closer // closing it makes the agent stop even if the harness dies
	out   *bufio.Reader
}

// Start runs the podnet-agent at path with args, its environment plus env, and waits for its
// "ready" line (the kernel programs are attached). It stops with the harness (SIGTERM on the
// parent's death, or its stdin closing).
func Start(path string, args, env []string) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), env...)
	errTail := &tail{}
	cmd.Stderr = io.MultiWriter(os.Stderr, errTail)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &Proc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if line, err := a.out.ReadString('\n'); err != nil || line != "ready\n" {
		_ = stdin.Close()
		_ = cmd.Wait() // also waits until stderr is copied
		return nil, fmt.Errorf("podnet-agent did not start (stdout %q, %w): %s", line, err, errTail.String())
	}
	return a, nil
}

// CPU is the CPU time the agent's threads have used so far, live and exited, to the
// nanosecond: the kernel's CPU clock of the process (its threads' scheduler run time). The
// utime+stime of /proc/<pid>/stat count 10 ms ticks, a few ticks in a metrics-only run.
func (a *Proc) CPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(processCPUClock(a.cmd.Process.Pid), &ts); err != nil {
		return 0, fmt.Errorf("CPU clock of podnet-agent (pid %d): %w", a.cmd.Process.Pid, err)
	}
	return time.Duration(ts.Nano()), nil
}

// processCPUClock is the clock id of a process's CPU clock, as the kernel makes it
// (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)): reading it needs no permission over pid.
func processCPUClock(pid int) int32 {
	const cpuClockSched = 2
	return int32(^pid<<3 | cpuClockSched)
}

// Memory returns the agent's resident set now and at its peak, in KiB.
func (a *Proc) Memory() (rss, peak int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		}
	}
	return rss, peak
}

// Stop shuts the agent down (it drains the ring first) and returns its counters.
func (a *Proc) Stop() (agentstats.Counters, error) {
	var c agentstats.Counters
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	line, readErr := a.out.ReadString('\n')
	_ = a.stdin.Close()
	if err := a.cmd.Wait(); err != nil {
		return c, fmt.Errorf("podnet-agent: %w", err)
	}
	if readErr != nil {
		return c, fmt.Errorf("podnet-agent printed no counters: %w", readErr)
	}
	return c, json.Unmarshal([]byte(line), &c)
}
