//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/podnet/podnet/bpf"
)

// overflowLedger turns the listener scan's socket drop counts into accept-queue overflows. It
// must see every listener of a namespace (excluded ports too: their drops are theirs).
//
// A listener's sk_drops counts its ListenDrops (SYNs and completed handshakes its full queue or a
// failed allocation dropped) and also every packet a pending request refused: a client's
// retransmitted SYN while its SYN-ACK is lost (counted with no overflow at all), and the last ACK
// of a handshake the full queue dropped (counted twice). The kernel keeps the true count only per
// network namespace (TcpExt ListenDrops). So each scan takes, per namespace whose listeners
// dropped anything, the rise of its ListenDrops since the last read as the bound of what its
// listeners' socket drops may count: a namespace with one dropping listener per interval (a pod's
// server) gets the kernel's count exactly; several share the bound in proportion to their socket
// drops, and their sum stays exact.
type overflowLedger struct {
	socks map[listenerID]uint32  // the last scan's listeners' socket drops
	netns map[uint32]ledgerNetns // namespaces' ListenDrops at their last read
	// listenDrops reads a namespace's ListenDrops through a process in it.
	listenDrops func(pid, netns uint32) (uint64, error)
	// primed: the listeners' socket drops at Start (prime), until the first scan has taken
	// them as its baseline.
	primed map[primedListener]uint32
}

// primedListener is a listener as the scan at Start saw it: by socket, namespace and port, as
// that scan (a descriptor walk, before the start-up scan filled the listeners map) cannot tell
// when it began listening (listenerID.since).
type primedListener struct {
	sk    uint64
	netns uint32
	port  uint16
}

// listenerID is one listener: its socket, and when it began listening (a socket's memory is
// reused by later sockets; 0 from the descriptor walk, which cannot tell).
type listenerID struct{ sk, since uint64 }

type ledgerNetns struct {
	listenDrops uint64
	// carry is the bound the last read left unused: drops counted in the namespace after the
	// scan read its sockets, which their sockets show at the next scan.
	carry uint64
}

// maxLedgerNetns bounds the namespaces remembered without listeners in the last scan (a pod
// whose server restarts keeps its baseline); past it only the last scan's are kept.
const maxLedgerNetns = 4096

func newOverflowLedger(listenDrops func(pid, netns uint32) (uint64, error)) *overflowLedger {
	return &overflowLedger{socks: map[listenerID]uint32{}, netns: map[uint32]ledgerNetns{}, listenDrops: listenDrops}
}

// prime takes the listeners at Start as the baseline: their drops, and their namespaces'
// ListenDrops, from before podnet started are not counted. A series' start time is when podnet
// began counting, and a first point holding a listener's drops since it was created would
// claim them for the first interval: a backend reads a burst of overflows at every collector
// restart (found by an independent check: 30 drops from before Start in a first point 5.8 s
// after it).
func (l *overflowLedger) prime(scan []bpf.PodnetListenDrops) {
	l.primed = make(map[primedListener]uint32, len(scan))
	pids := map[uint32][]uint32{}
	for i := range scan {
		r := &scan[i]
		l.primed[primedListener{sk: r.Sk, netns: r.NetnsIno, port: r.Port}] = r.Drops
		if !slices.Contains(pids[r.NetnsIno], r.Tgid) && r.Tgid != 0 {
			pids[r.NetnsIno] = append(pids[r.NetnsIno], r.Tgid)
		}
	}
	for ns, p := range pids {
		if now, ok := l.readListenDrops(ns, p); ok {
			l.netns[ns] = ledgerNetns{listenDrops: now}
		}
	}
}

// ledgerRise is one socket's drops since the last scan.
type ledgerRise struct {
	sk   uint64
	key  listenKey
	rise uint64
}

// unreadNetns is a namespace whose ListenDrops could not be read, and its ports that dropped.
type unreadNetns struct {
	netns uint32
	ports []uint16
}

func (u unreadNetns) String() string {
	return fmt.Sprintf("network namespace %d (ports %v)", u.netns, u.ports)
}

// take returns the overflows of every listening port of the scan since the previous scan (0 for
// ports with none), and the namespaces whose ListenDrops could not be read while their
// listeners dropped, in inode order: their sockets' drops were taken whole.
func (l *overflowLedger) take(scan []bpf.PodnetListenDrops) (overflows map[listenKey]int64, unread []unreadNetns) {
	overflows = map[listenKey]int64{}
	byNetns := map[uint32][]ledgerRise{}
	pids := map[uint32][]uint32{}
	socks := make(map[listenerID]uint32, len(scan))
	for i := range scan {
		r := &scan[i]
		id := listenerID{sk: r.Sk, since: r.Since}
		if _, dup := socks[id]; dup {
			continue
		}
		k := listenKey{res: resourceKey{netnsIno: r.NetnsIno, cgroupID: r.CgroupId}, port: r.Port}
		socks[id] = r.Drops
		overflows[k] += 0
		rise := uint64(r.Drops) // a listener new since the last scan: all its drops are new
		if prev, ok := l.socks[id]; ok && prev <= r.Drops {
			rise -= uint64(prev)
		} else if base, ok := l.primed[primedListener{sk: r.Sk, netns: r.NetnsIno, port: r.Port}]; ok && base <= r.Drops {
			rise -= uint64(base)
		}
		byNetns[r.NetnsIno] = append(byNetns[r.NetnsIno], ledgerRise{sk: r.Sk, key: k, rise: rise})
		if r.Tgid != 0 && !slices.Contains(pids[r.NetnsIno], r.Tgid) {
			pids[r.NetnsIno] = append(pids[r.NetnsIno], r.Tgid)
		}
	}
	l.socks, l.primed = socks, nil
	for ns, rises := range byNetns {
		var sum uint64
		for _, r := range rises {
			sum += r.rise
		}
		// Read at every scan, drops or not: a rise no socket of this scan claims (a listener
		// that closed unreported) must not stay in the bound for a later scan's refused packets.
		prev, known := l.netns[ns]
		now, ok := l.readListenDrops(ns, pids[ns])
		if !ok {
			u := unreadNetns{netns: ns}
			for _, r := range rises {
				overflows[r.key] += int64(r.rise)
				if r.rise > 0 && !slices.Contains(u.ports, r.key.port) {
					u.ports = append(u.ports, r.key.port)
				}
			}
			if sum > 0 {
				slices.Sort(u.ports)
				unread = append(unread, u)
			}
			continue
		}
		// The bound: the rise since the last read, and what that read left; a namespace first
		// read (or whose counter fell: its inode reused by a new namespace) has had all of its
		// ListenDrops since it was created.
		fresh, bound := now, now
		if known && now >= prev.listenDrops {
			fresh = now - prev.listenDrops
			bound = fresh + prev.carry
		}
		left := bound - share(bound, sum, rises, overflows)
		// Carried: only this read's own rise (an older one's sockets have shown theirs), and only
		// while the namespace's listeners are dropping (a rise with none of theirs is a closed
		// listener's, never to be claimed).
		var carry uint64
		if known && sum > 0 {
			carry = min(left, fresh)
		}
		l.netns[ns] = ledgerNetns{listenDrops: now, carry: carry}
	}
	if len(l.netns) > maxLedgerNetns {
		for ns := range l.netns {
			if _, live := byNetns[ns]; !live {
				delete(l.netns, ns)
			}
		}
	}
	slices.SortFunc(unread, func(a, b unreadNetns) int { return cmp.Compare(a.netns, b.netns) })
	return overflows, unread
}

// readListenDrops reads the namespace's ListenDrops through the first of its listeners'
// processes that is still there and still in it.
func (l *overflowLedger) readListenDrops(ns uint32, pids []uint32) (uint64, bool) {
	for _, pid := range pids {
		if n, err := l.listenDrops(pid, ns); err == nil {
			return n, true
		}
	}
	return 0, false
}

// share gives the sockets' rises (summing to sum) at most bound in all: each its whole rise when
// the bound covers them, else its share of the bound in proportion, the remainder to the largest
// fractions (then the largest rises, then the lowest socket, so that a scan always gives the
// same). Returns what it gave.
func share(bound, sum uint64, rises []ledgerRise, overflows map[listenKey]int64) uint64 {
	if bound >= sum {
		for _, r := range rises {
			overflows[r.key] += int64(r.rise)
		}
		return sum
	}
	type part struct {
		ledgerRise
		got, frac uint64
	}
	parts := make([]part, len(rises))
	var given uint64
	for i, r := range rises {
		// bound * rise / sum < rise: the quotient fits, whatever the product.
		hi, lo := bits.Mul64(bound, r.rise)
		got, frac := bits.Div64(hi, lo, sum)
		parts[i] = part{ledgerRise: r, got: got, frac: frac}
		given += got
	}
	slices.SortFunc(parts, func(a, b part) int {
		return cmp.Or(cmp.Compare(b.frac, a.frac), cmp.Compare(b.rise, a.rise), cmp.Compare(a.sk, b.sk))
	})
	for i := 0; given < bound; i++ {
		parts[i].got++
		given++
	}
	for _, p := range parts {
		overflows[p.key] += int64(p.got)
	}
	return given
}
