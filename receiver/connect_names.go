//go:build linux && (amd64 || arm64)

package podnetreceiver

import "net/netip"

// connectNames keeps, from a client's connect to its close, the DNS name its connect record
// got, so that the close is named the same however many answers came for its address since.
// The DNS table keeps four answers per address, and a pod that asks again for the same name
// after its TTL, or alternates two names of one CDN address, made four new ones within minutes:
// a long-lived connection's close was then named nothing (found by an independent check: a
// pooled connection to db.example, its connect named, its close not). A close that finds no
// entry is named by the table as before: its connect not read (connect records off, sampled
// out, read after the close from another CPU's ring), or pushed out while more than
// maxConnectNames named connections were open at once.
//
// A connection is its four-tuple and its start on the kernel's boot clock (event.BootStart,
// which its connect and its close both carry): an entry whose close never comes (the close read
// first, or lost to a full ring) stays until pushed out, and a later connection on the same
// tuple never takes its name (found by an independent check). A nil *connectNames remembers
// nothing: where closes or connects are not read, entries would only wait to be pushed out.
type connectNames struct {
	byConn map[connTuple]connectName
	// order holds the entries in the order they were added, the oldest at head; entries closed
	// since stay in it until they reach the head or a compaction (at 2 × maxConnectNames).
	order []orderedConn
	head  int
	seq   uint64
}

// maxConnectNames bounds the connections remembered at once (~200 B each, ~3 MiB).
const maxConnectNames = 16384

// connTuple is one connection while it is open: its namespace and its two ends.
type connTuple struct {
	netns       uint32
	local, peer netip.AddrPort
}

type connectName struct {
	name  string
	start uint64 // the connection's start, boot clock
	seq   uint64 // which of order's entries is this one
}

type orderedConn struct {
	k   connTuple
	seq uint64
}

func newConnectNames() *connectNames {
	return &connectNames{byConn: map[connTuple]connectName{}}
}

// connected remembers the name a connect got; with maxConnectNames remembered, it forgets the
// oldest of them.
func (c *connectNames) connected(k connTuple, start uint64, name string) {
	if c == nil || name == "" || start == 0 {
		return
	}
	if _, reused := c.byConn[k]; !reused && len(c.byConn) >= maxConnectNames {
		c.forgetOldest()
	}
	c.seq++
	c.byConn[k] = connectName{name: name, start: start, seq: c.seq}
	c.order = append(c.order, orderedConn{k, c.seq})
	if len(c.order)-c.head > 2*maxConnectNames {
		c.compact()
	}
}

// closed is the name the connection's connect got, and forgets it.
func (c *connectNames) closed(k connTuple, start uint64) (string, bool) {
	if c == nil {
		return "", false
	}
	e, ok := c.byConn[k]
	if !ok || e.start != start {
		return "", false
	}
	delete(c.byConn, k)
	return e.name, true
}

func (c *connectNames) live(o orderedConn) bool {
	e, ok := c.byConn[o.k]
	return ok && e.seq == o.seq
}

func (c *connectNames) forgetOldest() {
	for ; c.head < len(c.order); c.head++ {
		if o := c.order[c.head]; c.live(o) {
			delete(c.byConn, o.k)
			c.head++
			return
		}
	}
}

// compact drops the entries closed since they were added, keeping order's length within
// 2 × maxConnectNames + 1 however many connections come and go.
func (c *connectNames) compact() {
	kept := c.order[:0]
	for _, o := range c.order[c.head:] {
		if c.live(o) {
			kept = append(kept, o)
		}
	}
	clear(c.order[len(kept):])
	c.order, c.head = kept, 0
}
