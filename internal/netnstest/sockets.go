package netnstest

import (
	"strings"
)

// OpenTCPSockets lists (as ss prints them) the TCP sockets of the pod's namespace that have
// not yet reached CLOSE, listeners included. TIME_WAIT is left out: it is a minisocket that
// replaced a full socket which already went through CLOSE. An empty list is how a test knows
// that the kernel has made every state change its connections will make.
func (p *Pod) OpenTCPSockets() []string {
	p.t.Helper()
	out, err := p.Command("ss", "-Htan", "exclude", "time-wait").CombinedOutput()
	if err != nil {
		p.t.Errorf("ss in %s: %v\n%s", p.Name, err, out)
		return []string{"ss failed"}
	}
	var open []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			open = append(open, strings.Join(strings.Fields(line), " "))
		}
	}
	return open
}
