package netnstest

import (
	"regexp"
	"strconv"
)

// Netstat reads a TcpExt counter of the pod's namespace (/proc/net/netstat), e.g. ListenDrops.
func (p *Pod) Netstat(name string) int {
	p.t.Helper()
	out := p.Exec("cat", "/proc/net/netstat")
	rows := regexp.MustCompile(`(?m)^TcpExt: (.*)\nTcpExt: (.*)$`).FindStringSubmatch(out)
	if rows == nil {
		p.t.Fatalf("no TcpExt in %s's /proc/net/netstat:\n%s", p.Name, out)
	}
	fields := regexp.MustCompile(`\S+`)
	names, values := fields.FindAllString(rows[1], -1), fields.FindAllString(rows[2], -1)
	for i, n := range names {
		if n == name && i < len(values) {
			v, err := strconv.Atoi(values[i])
			if err != nil {
				p.t.Fatalf("TcpExt %s: %v", name, err)
			}
			return v
		}
	}
	p.t.Fatalf("no TcpExt %s in %s", name, p.Name)
	return 0
}

// Overflow makes a listener at port in the pod with a backlog of 1 that never accepts, hits it
// with n connects at once from client, waits through a round of SYN retransmissions, and closes
// the clients (no more SYNs: the counts stay put); the listener stays open until the test ends.
func (p *Pod) Overflow(client *Pod, port, n int) {
	p.t.Helper()
	if err := overflow(p, client, port, n); err != nil {
		p.t.Fatalf("overflowing a listener at %d in %s: %v", port, p.Name, err)
	}
}
