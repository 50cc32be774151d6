package netnstest

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Real HTTP programs (python3's http.server, curl) as pod workloads: end-to-end tests see the
// process names and byte counts a user would, not the test binary's.

// StartHTTPServer serves dir with `python3 -m http.server` on the pod's IPv4 address and port,
// and returns its pid once it listens. It is killed at cleanup.
func (p *Pod) StartHTTPServer(t testing.TB, dir string, port int) (pid int) {
	t.Helper()
	cmd := p.Command("python3", "-m", "http.server", strconv.Itoa(port), "--bind", p.IPv4.String(), "--directory", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Waiting on the listening socket, not on a probe request: a probe would be a connection
	// the test then has to account for.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.TrimSpace(p.Exec("ss", "-Hltn", "sport = :"+strconv.Itoa(port))) != "" {
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("http.server in %s does not listen on port %d", p.Name, port)
		}
	}
}

// CurlResult is what one curl run did, as curl itself counts it.
type CurlResult struct {
	Pid           int
	ExitCode      int   // 0, or curl's code: 7 is "failed to connect"
	LocalPort     int64 // the connection's ephemeral port (%{local_port})
	RequestBytes  int64 // bytes curl sent (%{size_request})
	ResponseBytes int64 // header + body bytes curl received
}

// Curl runs one `curl GET` of url inside the pod: one TCP connection per call.
func (p *Pod) Curl(t testing.TB, host netip.Addr, port int, path string) CurlResult {
	t.Helper()
	url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(host, uint16(port)), path)
	cmd := p.Command("curl", "--noproxy", "*", "-s", "-o", "/dev/null", "--max-time", "10",
		"-w", "%{local_port} %{size_request} %{size_header} %{size_download}", url)
	out, err := cmd.Output()
	res := CurlResult{Pid: cmd.Process.Pid}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("curl %s: %v", url, err)
	}
	var header, body int64
	if _, err := fmt.Sscan(string(out), &res.LocalPort, &res.RequestBytes, &header, &body); err != nil {
		t.Fatalf("curl %s: unexpected -w output %q: %v", url, out, err)
	}
	res.ResponseBytes = header + body
	return res
}
