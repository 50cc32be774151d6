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

// SocketDrops is the drop count (sk_drops, ss's "d") of the pod's listener at port.
func (p *Pod) SocketDrops(port int) int {
	p.t.Helper()
	out := p.Exec("ss", "-Htlnm", "sport = :"+strconv.Itoa(port))
	m := regexp.MustCompile(`,d(\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		p.t.Fatalf("no listener at %d in %s (ss: %q)", port, p.Name, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
