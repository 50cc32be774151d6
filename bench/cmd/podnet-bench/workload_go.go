package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// goWorkload is the built-in server and load generator in one mode.
type goWorkload struct {
	mode    string
	workers int
	self    string // this executable, re-run inside the namespaces
}

func (w goWorkload) name() string { return "go-" + w.mode }

func (w goWorkload) describe() string {
	switch w.mode {
	case modeConnect:
		return fmt.Sprintf("built-in Go client, %d workers: connect + close per connection", w.workers)
	case modeBulk:
		return fmt.Sprintf("built-in Go client, %d connections each writing %d KiB at a time: its \"connections\" are writes, so per connection reads per 64 KiB moved", w.workers, bulkChunk>>10)
	}
	return fmt.Sprintf("built-in Go client, %d workers: connect, %d B request, %d B response, close", w.workers, reqSize, respSize)
}

func (w goWorkload) start(p *pods) (stop func(), err error) {
	cmd := in(p.server, w.self, "serve", "-mode", w.mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { _ = stdin.Close(); _ = cmd.Wait() }
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
		stop()
		return nil, fmt.Errorf("server did not start: %q %w", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return stop, nil
}

func (w goWorkload) load(p *pods, d time.Duration) (loadResult, error) {
	cmd := in(p.client, w.self, "load", "-mode", w.mode, "-workers", strconv.Itoa(w.workers), "-duration", d.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var r loadResult
	if err != nil {
		return r, fmt.Errorf("load generator: %w", err)
	}
	return r, json.Unmarshal(out, &r)
}
