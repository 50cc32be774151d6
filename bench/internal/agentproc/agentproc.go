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

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on every Linux ABI).
const clockTick = 100

// CPU is the agent's user+system CPU time so far.
func (a *Proc) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised comm; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", a.cmd.Process.Pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// RunTime is the time the agent's threads have run so far, from the scheduler's per-thread
// sum_exec_runtime (/proc/<pid>/task/*/schedstat): exact to the nanosecond where CPU counts
// 10 ms ticks, for figures a few ticks long. A thread that has exited is no longer counted
// (the Go runtime keeps its threads).
func (a *Proc) RunTime() (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", a.cmd.Process.Pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %s/%s/schedstat", dir, t.Name())
		}
		sum += time.Duration(ns)
	}
	return sum, nil
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
