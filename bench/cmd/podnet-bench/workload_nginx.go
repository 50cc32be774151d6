package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// nginxWorkload is a real server and a real load tool: Debian's nginx in the server
// namespace and wrk in the client namespace, every request on a new connection.
type nginxWorkload struct {
	connections int
	dir         string // nginx prefix: config, pid file, temp paths
}

func (w nginxWorkload) name() string { return "nginx-wrk" }

func (w nginxWorkload) describe() string {
	return fmt.Sprintf("nginx (return 200, access_log off) + wrk -t2 -c%d -H 'Connection: close'", w.connections)
}

// nginxAvailable says why the nginx workload cannot run, or "".
func nginxAvailable() string {
	for _, bin := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt-get install nginx wrk; `make bench-setup` tries)"
		}
	}
	return ""
}

const nginxConf = `daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
http {
	access_log off;
	keepalive_timeout 0;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s:8080 backlog=8192;
		location / { return 200 "ok\n"; }
	}
}
`

func (w nginxWorkload) start(p *pods) (stop func(), err error) {
	conf := filepath.Join(w.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, w.dir, serverIP)), 0o644); err != nil {
		return nil, err
	}
	cmd := in(p.server, "nginx", "-p", w.dir, "-c", conf, "-e", "stderr")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// SIGTERM to the master is nginx's fast shutdown: it stops its workers and exits.
	stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	for range 50 {
		out, _ := in(p.server, "ss", "-Hltn", "src", serverIP+":8080").Output()
		if len(out) > 0 {
			return stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("nginx did not listen on %s:8080 within 5s", serverIP)
}

var (
	wrkRate    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
)

// load runs wrk; its latency is per request, from the request's write to the response: wrk
// starts the timer once connected, so with Connection: close it leaves out the new
// connection's handshake, which the Go workloads' latency (connect to close) includes.
func (w nginxWorkload) load(p *pods, d time.Duration) (loadResult, error) {
	url := fmt.Sprintf("http://%s:8080/", serverIP)
	out, err := in(p.client, "wrk", "-t2", "-c"+strconv.Itoa(w.connections), "-d"+strconv.Itoa(int(d.Seconds()))+"s",
		"--latency", "-H", "Connection: close", url).CombinedOutput()
	var r loadResult
	if err != nil {
		return r, fmt.Errorf("wrk: %w: %s", err, out)
	}
	s := string(out)
	rate, total := wrkRate.FindStringSubmatch(s), wrkTotal.FindStringSubmatch(s)
	if rate == nil || total == nil {
		return r, fmt.Errorf("cannot parse wrk output:\n%s", s)
	}
	r.Connections, _ = strconv.ParseInt(total[1], 10, 64)
	reqPerSec, _ := strconv.ParseFloat(rate[1], 64)
	r.Elapsed = time.Duration(float64(r.Connections) / reqPerSec * float64(time.Second))
	for _, m := range wrkLatency.FindAllStringSubmatch(s, -1) {
		v, _ := time.ParseDuration(m[2] + m[3])
		if m[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	for _, m := range append(wrkErrors.FindAllStringSubmatch(s, -1), wrkNon2xx.FindAllStringSubmatch(s, -1)...) {
		for _, n := range m[1:] {
			v, _ := strconv.ParseInt(n, 10, 64)
			r.Errors += v
		}
	}
	return r, nil
}
