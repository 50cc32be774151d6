package main

import (
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"time"
)

// routedLoadgenWorkload is bench/loadgen between the routed node's pods: its client threads in
// the client pod, a server in each backend pod, every packet forwarded by the node. Through the
// Service (loadgen-service), the client connects to the VIP, which kube-proxy's rules in the node
// translate to a backend picked at random per connection; otherwise (loadgen-pod) it connects to
// the first backend's pod IP on a port no Service leads to, across the same node and rules,
// translated by none of them: what a connection to anything but a Service pays for podnet's
// service_backends.
type routedLoadgenWorkload struct {
	path    string
	workers int
	service bool
}

func (w routedLoadgenWorkload) name() string {
	if w.service {
		return "loadgen-service"
	}
	return "loadgen-pod"
}

func (w routedLoadgenWorkload) describe() string {
	how := fmt.Sprintf("client pod → Service %v, DNAT'd in the node (kube-proxy nftables rules) to a random one of the backend pods' :%d",
		serviceVIP, backendPort)
	if !w.service {
		how = fmt.Sprintf("client pod → the first backend pod's IP :%d directly (no Service, no translation), through the same node and rules", plainPort)
	}
	return fmt.Sprintf("bench/loadgen (C), %d client threads in a client pod, %d server threads in each backend pod, "+
		"pods on their own veths and subnets routed by a node namespace: %s. "+
		"Connect, the server accepts and closes, the client reads EOF and closes; no latency measured", w.workers, w.workers, how)
}

// start runs loadgen's server in the backend pods the workload connects to.
func (w routedLoadgenWorkload) start(p *pods) (stop func(), err error) {
	backends, port := p.node.backends, backendPort
	if !w.service {
		backends, port = backends[:1], plainPort
	}
	var servers []*exec.Cmd
	var stdins []io.Closer
	stop = func() {
		for i, s := range servers {
			_ = stdins[i].Close() // the server exits when its stdin closes
			_ = s.Wait()
		}
	}
	for i, ns := range backends {
		cmd, stdin, _, err := spawn(in(ns, w.path, "-s", p.node.backendIPs[i].String(), strconv.Itoa(port), strconv.Itoa(w.workers)), "listening")
		if err != nil {
			stop()
			return nil, fmt.Errorf("loadgen server in %s: %w", ns, err)
		}
		servers, stdins = append(servers, cmd), append(stdins, stdin)
	}
	return stop, nil
}

func (w routedLoadgenWorkload) load(p *pods, d time.Duration) (loadResult, error) {
	target := serviceVIP
	if !w.service {
		target = netip.AddrPortFrom(p.node.backendIPs[0], plainPort)
	}
	return runLoadgen(in(p.node.client, w.path, "-c", target.Addr().String(), strconv.Itoa(int(target.Port())), strconv.Itoa(w.workers), seconds(d)))
}
