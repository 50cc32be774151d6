package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podnet/podnet/bench/internal/agentproc"
	"github.com/podnet/podnet/bench/internal/agentstats"
	"github.com/podnet/podnet/internal/hiddenclose"
)

type runConfig struct {
	agent, loadgen string
	duration       time.Duration
	workers        int
	config         string
	env            []string
}

// loadResult is the load generator's JSON line.
type loadResult struct {
	Connections int64 `json:"connections"`
	Errors      int64 `json:"errors"`
	ElapsedNs   int64 `json:"elapsed_ns"`
}

type result struct {
	load     loadResult
	agent    agentstats.Counters
	agentCPU time.Duration
	peakRSS  int64 // KiB
	// Closes of the load's connections the kernel ran while a PID 1 thread was current, which no
	// BPF program sees on the development VM (invisible.go).
	hiddenServer, hiddenClient int64
}

// fullLoadRun makes a namespace, starts the agent, runs the load, stops the agent (its
// Shutdown drains the ring) and returns both accounts.
func fullLoadRun(c runConfig) (result, error) {
	var r result
	ns, ino, err := newNamespace()
	if err != nil {
		return r, err
	}
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }()

	agent, err := agentproc.Start(c.agent,
		[]string{"-pipelines", "logs,metrics", "-config", c.config, "-count-netns", strconv.FormatUint(ino, 10)}, c.env)
	if err != nil {
		return r, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = agent.Stop()
		}
	}()

	hidden, err := hiddenclose.Watch("podnet-fullload")
	if err != nil {
		fmt.Fprintln(os.Stderr, "podnet-fullload: closes hidden from BPF not counted:", err)
	}
	defer hidden.Close()
	seconds := strconv.FormatFloat(c.duration.Seconds(), 'f', 3, 64)
	load := exec.Command("ip", "netns", "exec", ns, c.loadgen, "127.0.0.1", "9000", strconv.Itoa(c.workers), seconds)
	load.Stderr = os.Stderr
	b, err := load.Output()
	if err != nil {
		return r, fmt.Errorf("load generator: %w", err)
	}
	if err := json.Unmarshal(b, &r.load); err != nil {
		return r, fmt.Errorf("load generator said %q: %w", b, err)
	}

	if err := settle(ns); err != nil {
		return r, err
	}
	server, client, err := hidden.Count(9000)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podnet-fullload: closes hidden from BPF not counted:", err)
	}
	r.hiddenServer, r.hiddenClient = int64(server), int64(client)
	if r.agentCPU, err = agent.CPU(); err != nil {
		return r, err
	}
	_, r.peakRSS = agent.Memory()
	stopped = true
	if r.agent, err = agent.Stop(); err != nil {
		return r, err
	}
	return r, nil
}

// settle waits until every connection of the namespace has reached CLOSE or TIME_WAIT (whose
// close podnet has already seen): under load the kernel defers the last ACKs to ksoftirqd, and
// a close that happens after the agent stopped is not podnet's to count.
func settle(ns string) error {
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-Htan", "state", "connected", "exclude", "time-wait").Output()
		if err != nil {
			return fmt.Errorf("ss in %s: %w", ns, err)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connections in %s still open 10 s after the load ended:\n%s", ns, out)
		}
		time.Sleep(10 * time.Millisecond) // polling the kernel's socket table, not standing in for it
	}
}

// newNamespace returns a fresh network namespace with loopback up, and its inode.
func newNamespace() (string, uint64, error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "pnf-" + hex.EncodeToString(b)
	for _, s := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "net.core.somaxconn=8192"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "net.ipv4.ip_local_port_range=1024 65535"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "netns", "del", ns).Run()
			return "", 0, fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/netns/"+ns, &st); err != nil {
		return "", 0, err
	}
	return ns, st.Ino, nil
}
