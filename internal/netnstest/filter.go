package netnstest

import (
	"regexp"
	"strconv"
	"sync"
)

// Filter is one nftables rule of a pod's own table, on one hook: how the tests make a pod's
// network drop, reject or just count packets (this kernel has no netem). The table is the
// filter's alone, so several filters of a pod never meet; it is removed at Remove or at the
// test's end, whichever comes first.
type Filter struct {
	pod    *Pod
	table  string
	remove sync.Once
}

var counted = regexp.MustCompile(`counter packets (\d+)`)

// Filter adds a rule to a new table named table in the pod's namespace, on hook ("input" or
// "output"): packets that match (nft syntax, e.g. "tcp dport 80") are counted, then given verdict
// ("drop", "reject with icmpx host-unreachable", or "" to only count them).
func (p *Pod) Filter(table, hook, match, verdict string) *Filter {
	p.t.Helper()
	p.Exec("nft", "add table inet "+table)
	p.Exec("nft", "add chain inet "+table+" c { type filter hook "+hook+" priority 0 ; policy accept ; }")
	p.Exec("nft", "add rule inet "+table+" c "+match+" counter "+verdict)
	f := &Filter{pod: p, table: table}
	p.t.Cleanup(f.Remove)
	return f
}

// Packets is how many packets the rule has matched so far (-1, and the test marked failed, when
// the table cannot be read). Safe from any goroutine.
func (f *Filter) Packets() int {
	out, err := f.pod.Command("nft", "list", "chain", "inet", f.table, "c").CombinedOutput()
	m := counted.FindSubmatch(out)
	if err != nil || m == nil {
		f.pod.t.Errorf("%s's filter %s: %v\n%s", f.pod.Name, f.table, err, out)
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// Remove deletes the filter's table: its packets pass again. Only the first call does anything.
func (f *Filter) Remove() {
	f.remove.Do(func() {
		if out, err := f.pod.Command("nft", "delete", "table", "inet", f.table).CombinedOutput(); err != nil {
			f.pod.t.Errorf("removing %s's filter %s: %v\n%s", f.pod.Name, f.table, err, out)
		}
	})
}
