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
	"time"
)

// longLivedWorkload holds idle and busy connections open between the namespaces for all its
// runs (opened before any podnet run starts), with or without the go-connect churn on top.
// Without churn it is the measure of podnet's periodic work on open connections.
type longLivedWorkload struct {
	idle, busy int
	size       int           // bytes per write on a busy connection
	every      time.Duration // between writes on a busy connection
	churn      *goWorkload   // nil: no churn
	self       string

	release func() // closes the held connections; nil when none are open
}

func (w *longLivedWorkload) name() string {
	if w.churn == nil {
		return "long-lived-quiet"
	}
	return "long-lived"
}

func (w *longLivedWorkload) describe() string {
	held := fmt.Sprintf("%d idle + %d busy connections held open (opened before podnet starts); "+
		"each busy connection: the client writes %d B every %v, the server reads and discards (%.1f MiB/s in all)",
		w.idle, w.busy, w.size, w.every, float64(w.busy*w.size)/w.every.Seconds()/(1<<20))
	if w.churn == nil {
		return held + "; no other load. Each pair: podnet with the connections held, and podnet with them closed (the floor)"
	}
	return held + "; plus " + w.churn.describe()
}

// periodicOnly: without churn there is nothing to compare with a baseline; the runner pairs a
// podnet run with the connections held and one without them instead.
func (w *longLivedWorkload) periodicOnly() bool { return w.churn == nil }

// start opens the held connections for the churn variant; the quiet one opens and closes them
// run by run (hold, from the runner).
func (w *longLivedWorkload) start(p *pods) (stop func(), err error) {
	if w.churn == nil {
		return func() { _ = w.hold(p, false) }, nil
	}
	stopChurn, err := w.churn.start(p)
	if err != nil {
		return nil, err
	}
	if err := w.hold(p, true); err != nil {
		stopChurn()
		return nil, err
	}
	return func() { _ = w.hold(p, false); stopChurn() }, nil
}

// hold opens the held connections (open) or closes them, if they are not so already.
func (w *longLivedWorkload) hold(p *pods, open bool) error {
	if open == (w.release != nil) {
		return nil
	}
	if !open {
		w.release()
		w.release = nil
		return nil
	}
	srv, srvIn, _, err := spawn(in(p.server, w.self, "hold-serve", "-fds", strconv.Itoa(w.idle+w.busy+256)), "listening")
	if err != nil {
		return fmt.Errorf("hold server: %w", err)
	}
	stopSrv := func() { _ = srvIn.Close(); _ = srv.Wait() }
	t0 := time.Now()
	cli, cliIn, cliOut, err := spawn(in(p.client, w.self, "hold", "-idle", strconv.Itoa(w.idle), "-busy", strconv.Itoa(w.busy),
		"-size", strconv.Itoa(w.size), "-every", w.every.String()), "holding")
	if err != nil {
		stopSrv()
		return fmt.Errorf("hold client: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%s: %d connections open in %v\n", w.name(), w.idle+w.busy, time.Since(t0).Round(time.Millisecond))
	w.release = func() {
		// The client closes first (its ends go to TIME_WAIT, as the churn's do) and reports what
		// the busy connections sent.
		_ = cliIn.Close()
		var r holdResult
		if err := json.NewDecoder(cliOut).Decode(&r); err == nil && r.Elapsed > 0 {
			want := float64(w.busy*w.size) / w.every.Seconds()
			got := float64(r.BusyBytes) / r.Elapsed.Seconds()
			fmt.Fprintf(os.Stderr, "%s: busy connections sent %.1f MiB/s (%.0f%% of the %.1f MiB/s asked)\n",
				w.name(), got/(1<<20), 100*got/want, want/(1<<20))
		}
		_ = cli.Wait()
		stopSrv()
	}
	return nil
}

// spawn starts cmd and waits for its ready line. Closing stdin makes it exit; what it prints
// after the ready line is left to read.
func spawn(cmd *exec.Cmd, ready string) (*exec.Cmd, io.Closer, io.Reader, error) {
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != ready+"\n" {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, nil, nil, fmt.Errorf("did not start: %q %w", line, err)
	}
	return cmd, stdin, r, nil
}

func (w *longLivedWorkload) load(p *pods, d time.Duration) (loadResult, error) {
	var r loadResult
	var err error
	if w.churn != nil {
		r, err = w.churn.load(p, d)
	} else {
		time.Sleep(d)
		r.Elapsed = d
	}
	for _, ns := range []string{p.client, p.server} {
		inuse, tw, serr := sockstat(ns)
		if serr != nil {
			return r, serr
		}
		r.OpenSockets += inuse
		r.TimeWait += tw
	}
	return r, err
}

// sockstat reads the TCP sockets in use and in TIME_WAIT in network namespace ns (both are
// per namespace in /proc/net/sockstat).
func sockstat(ns string) (inuse, tw int64, err error) {
	b, err := in(ns, "cat", "/proc/net/sockstat").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("sockstat in %s: %w", ns, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseInt(f[i+1], 10, 64)
			switch f[i] {
			case "inuse":
				inuse = v
			case "tw":
				tw = v
			}
		}
	}
	return inuse, tw, nil
}
