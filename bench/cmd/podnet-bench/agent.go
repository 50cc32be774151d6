package main

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

// agentProc is a running podnet-agent: podnet as a separate process, as it is in a real
// collector, so its CPU and memory are measured apart from the load.
type agentProc struct {
	cmd   *exec.Cmd
	stdin io.Closer // closing it makes the agent stop even if the harness dies
	out   *bufio.Reader
}

func startAgent(path string, sc scenario, profile string) (*agentProc, error) {
	args := []string{"-pipelines", sc.pipelines, "-config", sc.config}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	cmd := child(exec.Command(path, args...))
	cmd.Env = append(os.Environ(), sc.env...)
	cmd.Stderr = os.Stderr
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
	a := &agentProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if line, err := a.out.ReadString('\n'); err != nil || line != "ready\n" {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("podnet-agent did not start: %q %v", line, err)
	}
	return a, nil
}

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on every Linux ABI).
const clockTick = 100

// cpu is the agent's user+system CPU time so far.
func (a *agentProc) cpu() (time.Duration, error) {
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

// memory returns the agent's resident set now and at its peak, in KiB.
func (a *agentProc) memory() (rss, peak int64) {
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

// stop shuts the agent down (it drains the ring first) and returns its counters.
func (a *agentProc) stop() (agentstats.Counters, error) {
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
