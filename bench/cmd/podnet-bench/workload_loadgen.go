package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// loadgenWorkload is the lean C connect/close generator (bench/loadgen): server and client
// threads in one process in the client namespace, over its loopback. It spends next to nothing
// per connection in user space, so podnet's per-connection cost weighs most here. It measures
// no latency: its rows have rate and CPU, no p50/p99.
type loadgenWorkload struct {
	path    string
	workers int
}

// loadgenAddr is where the generator listens and connects, inside the client namespace.
const loadgenAddr, loadgenPort = "127.0.0.1", "9000"

func (w loadgenWorkload) name() string { return "loadgen" }

func (w loadgenWorkload) describe() string {
	return fmt.Sprintf("bench/loadgen (C), %d client + %d server threads in one process over loopback in one namespace: "+
		"connect, the server accepts and closes, the client reads EOF and closes; no latency measured", w.workers, w.workers)
}

// start has nothing to start: each run is the generator's own server and client.
func (w loadgenWorkload) start(*pods) (stop func(), err error) { return func() {}, nil }

func (w loadgenWorkload) load(p *pods, d time.Duration) (loadResult, error) {
	return runLoadgen(in(p.client, w.path, loadgenAddr, loadgenPort, strconv.Itoa(w.workers), seconds(d)))
}

// runLoadgen runs one loadgen client and reads its JSON line.
func runLoadgen(cmd *exec.Cmd) (loadResult, error) {
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var r loadResult
	if err != nil {
		return r, fmt.Errorf("loadgen: %w", err)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("loadgen said %q: %w", out, err)
	}
	return r, nil
}

// seconds is d as loadgen's SECONDS argument.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
