package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// pods is a client and a server network namespace joined by a veth pair. All benchmark
// traffic stays between them: nothing leaves namespaces this harness created.
type pods struct {
	client, server string
}

const (
	serverIP = "10.214.0.1"
	clientIP = "10.214.0.2"
)

func newPods() (*pods, error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	p := &pods{client: "pnb-cli-" + tag, server: "pnb-srv-" + tag}
	steps := [][]string{
		{"ip", "netns", "add", p.client},
		{"ip", "netns", "add", p.server},
		{"ip", "link", "add", "pnbc" + tag, "netns", p.client, "type", "veth", "peer", "name", "pnbs" + tag, "netns", p.server},
		{"ip", "-n", p.client, "addr", "add", clientIP + "/24", "dev", "pnbc" + tag},
		{"ip", "-n", p.server, "addr", "add", serverIP + "/24", "dev", "pnbs" + tag},
		{"ip", "-n", p.client, "link", "set", "pnbc" + tag, "up"},
		{"ip", "-n", p.server, "link", "set", "pnbs" + tag, "up"},
		{"ip", "-n", p.client, "link", "set", "lo", "up"},
		{"ip", "-n", p.server, "link", "set", "lo", "up"},
		// Every client connection ends in TIME_WAIT on the client: without a wide port range
		// and reuse, a few seconds at ~50k connections/s run out of ephemeral ports.
		{"ip", "netns", "exec", p.client, "sysctl", "-q", "net.ipv4.ip_local_port_range=1024 65535"},
		{"ip", "netns", "exec", p.client, "sysctl", "-q", "net.ipv4.tcp_tw_reuse=1"},
		{"ip", "netns", "exec", p.server, "sysctl", "-q", "net.core.somaxconn=8192"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			p.delete()
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return p, nil
}

// delete removes both namespaces (and with them the veth pair).
func (p *pods) delete() {
	_ = exec.Command("ip", "netns", "del", p.client).Run()
	_ = exec.Command("ip", "netns", "del", p.server).Run()
}

// in returns a command that runs inside namespace ns (`ip netns exec` execs it in place).
func in(ns, name string, args ...string) *exec.Cmd {
	return child(exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...))
}

// child makes cmd stop with the harness: servers and agents never outlive an interrupted run.
// SIGTERM, not SIGKILL: nginx's master stops its workers on TERM, the agent shuts down cleanly.
func child(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return cmd
}
