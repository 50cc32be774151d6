//go:build linux

package podnetreceiver

import "net/netip"

// connectNames keeps, from a client's connect to its close, the DNS name its connect record
// got, so that the close is named the same however many answers came for its address since.
// The DNS table keeps four answers per address, and a pod that asks again for the same name
// after its TTL, or alternates two names of one CDN address, made four new ones within minutes:
// a long-lived connection's close was then named nothing (found by an independent check: a
// pooled connection to db.example, its connect named, its close not). A close that finds no
// entry is named by the table as before: its connect not read (connect records off, sampled
// out, read after the close from another CPU's ring), or pushed out by maxConnectNames newer
// named connects while it was open.
//
// An entry whose close never comes (the close read first, lost to a full ring) stays until
// newer connects push it out; a later connection on the same four-tuple matches it only with
// the same start, which is never (found by an independent check: a close named with the name of
// an earlier connection's connect). A nil *connectNames remembers nothing: where closes or
// connects are not read, entries would only wait to be pushed out.
type connectNames struct {
	byConn map[connTuple]connectName
	order  []orderedConn // a ring of the entries in the order they were added, the oldest at next once full
	next   int
	seq    uint64
}

// maxConnectNames bounds the open connections remembered (~200 B each, ~3 MiB).
const maxConnectNames = 16384

// connTuple is one connection while it is open: its namespace and its two ends.
type connTuple struct {
	netns       uint32
	local, peer netip.AddrPort
}

type connectName struct {
	name  string
	start uint64 // the connection's start (event.Event.Start): its close says the same
	seq   uint64 // which of order's entries is this one
}

type orderedConn struct {
	k   connTuple
	seq uint64
}

func newConnectNames() *connectNames {
	return &connectNames{byConn: map[connTuple]connectName{}}
}

// connected remembers the name a connect got; full, it forgets the oldest entry.
func (c *connectNames) connected(k connTuple, start uint64, name string) {
	if c == nil || name == "" || start == 0 {
		return
	}
	c.seq++
	if len(c.order) < maxConnectNames {
		c.order = append(c.order, orderedConn{k, c.seq})
	} else {
		old := c.order[c.next]
		if e, ok := c.byConn[old.k]; ok && e.seq == old.seq {
			delete(c.byConn, old.k)
		}
		c.order[c.next] = orderedConn{k, c.seq}
	}
	c.next = (c.next + 1) % maxConnectNames
	c.byConn[k] = connectName{name: name, start: start, seq: c.seq}
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
