//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
)

// namespaces is the ledger's fake /proc: each namespace's ListenDrops, read through any pid
// listed for it.
type namespaces struct {
	drops map[uint32]uint64
	pids  map[uint32]uint32 // pid -> its namespace
	reads int
}

func (n *namespaces) read(pid, netns uint32) (uint64, error) {
	n.reads++
	if n.pids[pid] != netns {
		return 0, errors.New("not in that namespace")
	}
	return n.drops[netns], nil
}

func listener(sk uint64, netns uint32, port uint16, drops uint32, tgid uint32) bpf.PodnetListenDrops {
	return bpf.PodnetListenDrops{Sk: sk, NetnsIno: netns, Port: port, Drops: drops, Tgid: tgid}
}

func portKey(netns uint32, port uint16) listenKey {
	return listenKey{res: resourceKey{netnsIno: netns}, port: port}
}

// A listener whose socket drops count refused retransmitted SYNs and double-counted last ACKs
// gets its namespace's ListenDrops; the one beside it that dropped nothing gets 0.
func TestLedgerBoundsSocketDropsByListenDrops(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	got, unread := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100), listener(2, 7, 9090, 0, 100)})
	assert.Equal(t, map[listenKey]int64{portKey(7, 80): 0, portKey(7, 9090): 0}, got)
	assert.Empty(t, unread)

	ns.drops[7] = 8
	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 20, 100), listener(2, 7, 9090, 0, 100)})
	assert.Equal(t, map[listenKey]int64{portKey(7, 80): 8, portKey(7, 9090): 0}, got)

	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 20, 100), listener(2, 7, 9090, 0, 100)})
	assert.Equal(t, map[listenKey]int64{portKey(7, 80): 0, portKey(7, 9090): 0}, got)
}

// A rise of the namespace's ListenDrops that no listener of the scan claims (a listener that
// closed unreported) is not left in the bound: a later scan's refused packets get nothing.
func TestLedgerGivesNoUnclaimedRiseToLaterRefusedPackets(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100)})
	ns.drops[7] = 40 // another listener's, which closed before the scan
	got, _ := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100)})
	assert.Equal(t, int64(0), got[portKey(7, 80)])
	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 20, 100)}) // retransmitted SYNs refused
	assert.Equal(t, int64(0), got[portKey(7, 80)])
}

// Listeners of one namespace that drop in the same interval share its ListenDrops in proportion
// to their socket drops, the sum exact; SO_REUSEPORT sockets of one port add up.
func TestLedgerSharesANamespaceBound(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100), listener(2, 7, 80, 0, 100), listener(3, 7, 81, 0, 100)})
	ns.drops[7] = 10
	got, _ := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 6, 100), listener(2, 7, 80, 6, 100), listener(3, 7, 81, 3, 100)})
	assert.Equal(t, int64(10), got[portKey(7, 80)]+got[portKey(7, 81)], "the namespace's ListenDrops, all given")
	assert.Equal(t, int64(8), got[portKey(7, 80)], "12 of 15 socket drops: 8 of 10")
	assert.Equal(t, int64(2), got[portKey(7, 81)])
	for range 3 { // the same scan always gives the same
		again := newOverflowLedger(ns.read)
		again.socks, again.netns = map[listenerID]uint32{{sk: 1}: 0, {sk: 2}: 0, {sk: 3}: 0},
			map[uint32]ledgerNetns{7: {}}
		g, _ := again.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 6, 100), listener(2, 7, 80, 6, 100), listener(3, 7, 81, 3, 100)})
		assert.Equal(t, got, g)
	}
}

// A drop the namespace counted after the scan read its socket is given at the next scan, when
// the socket shows it: the bound the first read left is carried once.
func TestLedgerCarriesADropCountedBetweenTheReads(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100)})
	ns.drops[7] = 3 // two drops the socket shows, one after it was read
	got, _ := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 2, 100)})
	assert.Equal(t, int64(2), got[portKey(7, 80)])
	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 3, 100)})
	assert.Equal(t, int64(1), got[portKey(7, 80)], "the third, carried")
	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 5, 100)})
	assert.Equal(t, int64(0), got[portKey(7, 80)], "two refused packets: nothing left to carry")
}

// A listener first seen after Start brings its drops since it was created, bounded by its namespace's
// ListenDrops since that was created; a new socket at a known address is a new listener.
func TestLedgerFirstSightAndReusedSockets(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 4}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	got, _ := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 9, 100)})
	assert.Equal(t, int64(4), got[portKey(7, 80)])
	ns.drops[7] = 6
	got, _ = l.take([]bpf.PodnetListenDrops{listener(1, 7, 81, 2, 100)}) // socket 1 freed, reused at 81
	assert.Equal(t, map[listenKey]int64{portKey(7, 81): 2}, got)
}

// Without a process left in its namespace, a listener's socket drops are taken whole and the
// namespace is reported unread; the first of several processes still there is used.
func TestLedgerReadsThroughAProcessStillInTheNamespace(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0, 8: 0}, pids: map[uint32]uint32{101: 7}}
	l := newOverflowLedger(ns.read)
	l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 0, 100), listener(2, 7, 81, 0, 101), listener(3, 8, 80, 0, 200)})
	ns.drops[7], ns.drops[8] = 1, 1
	got, unread := l.take([]bpf.PodnetListenDrops{listener(1, 7, 80, 3, 100), listener(2, 7, 81, 0, 101), listener(3, 8, 80, 3, 200)})
	assert.Equal(t, int64(1), got[portKey(7, 80)], "read through pid 101")
	assert.Equal(t, int64(3), got[portKey(8, 80)], "no process of namespace 8: taken whole")
	assert.Equal(t, []unreadNetns{{netns: 8, ports: []uint16{80}}}, unread)
	assert.Equal(t, "[network namespace 8 (ports [80])]", fmt.Sprint(unread), "the warning names it")
}

// The real /proc/net/netstat parses; a file without the counter is an error.
func TestTCPExtCounter(t *testing.T) {
	data, err := os.ReadFile("/proc/self/net/netstat")
	require.NoError(t, err)
	_, err = tcpExtCounter(data, "ListenDrops")
	require.NoError(t, err)
	n, err := tcpExtCounter([]byte("TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 1 2 3\nIpExt: A\nIpExt: 1\n"), "ListenDrops")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), n)
	_, err = tcpExtCounter([]byte("IpExt: A\nIpExt: 1\n"), "ListenDrops")
	assert.Error(t, err)
	_, err = tcpExtCounter([]byte("TcpExt: A\nTcpExt: 1\n"), "ListenDrops")
	assert.Error(t, err)
}

// A bound that does not divide evenly goes to the largest remainders, then the lowest sockets.
func TestShareGivesTheRemainderInOrder(t *testing.T) {
	got := map[listenKey]int64{}
	rises := []ledgerRise{{sk: 3, key: portKey(7, 83), rise: 1}, {sk: 1, key: portKey(7, 81), rise: 1}, {sk: 2, key: portKey(7, 82), rise: 1}}
	assert.Equal(t, uint64(2), share(2, 3, rises, got))
	assert.Equal(t, map[listenKey]int64{portKey(7, 81): 1, portKey(7, 82): 1, portKey(7, 83): 0}, got)
}

// A listener that closed and one that took its socket's memory are two listeners (the kernel
// reports the closed one's last count beside the new one's): each rise is its own.
func TestLedgerTellsListenersOnOneSocketApart(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 0}, pids: map[uint32]uint32{100: 7}}
	l := newOverflowLedger(ns.read)
	old := listener(1, 7, 80, 5, 100)
	old.Since = 10
	l.take([]bpf.PodnetListenDrops{old})
	ns.drops[7] = 100
	old.Drops = 9
	restarted := listener(1, 7, 80, 3, 100)
	restarted.Since = 20
	got, _ := l.take([]bpf.PodnetListenDrops{old, restarted})
	assert.Equal(t, int64(4+3), got[portKey(7, 80)], "the old listener's last 4 and the new one's 3")
}

// The listeners at Start are the baseline: what they and their namespaces dropped before is not
// counted, what they drop after is; one seen by the first scan only (after Start) brings all its
// drops; a primed socket that is another listener by then (reused at another port) too.
func TestLedgerCountsPrimedListenersFromStart(t *testing.T) {
	ns := &namespaces{drops: map[uint32]uint64{7: 30, 8: 0}, pids: map[uint32]uint32{100: 7, 101: 8}}
	l := newOverflowLedger(ns.read)
	primed := listener(1, 7, 80, 45, 100) // 45 socket drops, 30 of them overflows, before Start
	primed.Since = 0                      // the descriptor walk's
	l.prime([]bpf.PodnetListenDrops{primed, listener(2, 8, 90, 3, 101)})

	ns.drops[7], ns.drops[8] = 34, 7
	later := listener(1, 7, 80, 49, 100)
	later.Since = 1234 // the listeners map's: the same listener
	got, _ := l.take([]bpf.PodnetListenDrops{later, listener(2, 8, 91, 5, 101), listener(3, 8, 92, 2, 101)})
	assert.Equal(t, map[listenKey]int64{portKey(7, 80): 4, portKey(8, 91): 5, portKey(8, 92): 2}, got,
		"since Start: 4 of 80's; 91's socket is a new listener's, 92 is new: all theirs")
	got, _ = l.take([]bpf.PodnetListenDrops{later})
	assert.Equal(t, int64(0), got[portKey(7, 80)], "no new drop")
}
