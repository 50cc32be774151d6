package main

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"syscall"
)

// pods is a client and a server network namespace joined by a veth pair and, when a workload
// or scenario needs one, a routed node with a Service. All benchmark traffic stays between them:
// nothing leaves namespaces this harness created.
type pods struct {
	client, server string
	node           *routedNode // nil: not needed
}

const (
	serverIP = "10.214.0.1"
	clientIP = "10.214.0.2"
)

// newPods creates the namespaces; a routed node too, with that many backends, unless 0.
func newPods(backends int) (*pods, error) {
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
	if err := runSteps(steps); err != nil {
		p.delete()
		return nil, err
	}
	if backends > 0 {
		n, err := newRoutedNode(tag, backends)
		if err != nil {
			p.delete()
			return nil, err
		}
		p.node = n
	}
	return p, nil
}

// delete removes every namespace (and with them the veths).
func (p *pods) delete() {
	_ = exec.Command("ip", "netns", "del", p.client).Run()
	_ = exec.Command("ip", "netns", "del", p.server).Run()
	if p.node != nil {
		p.node.delete()
	}
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
