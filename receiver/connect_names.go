//go:build linux

package podnetreceiver

import "net/netip"

// connectNames keeps, from a client's connect to its close, the DNS name its connect record
// got, so that the close is named the same however many answers came for its address since.
// The DNS table keeps four answers per address, and a pod that asks again for the same name
// after its TTL, or alternates two names of one CDN address, made four new ones within minutes:
// a long-lived connection's close was then named nothing (found by an independent check: a
// pooled connection to db.example, its connect named, its close not). A close that finds no
// entry (its connect not read: connect records off, sampled out, read after the close from
// another CPU's ring, or this bound reached) is named by the table as before.
type connectNames struct {
	byConn map[connTuple]string
	max    int
}

// connTuple is one connection while it is open: its namespace and its two ends.
type connTuple struct {
	netns       uint32
	local, peer netip.AddrPort
}

func newConnectNames(max int) *connectNames {
	return &connectNames{byConn: map[connTuple]string{}, max: max}
}

// connected remembers the name a connect got. Full (closes not read: a lost ring's, or more
// open named connections than the bound), it remembers nothing more until closes make room.
func (c *connectNames) connected(k connTuple, name string) {
	if name == "" {
		return
	}
	if _, ok := c.byConn[k]; ok || len(c.byConn) < c.max {
		c.byConn[k] = name // a reused tuple: its earlier connection is closed
	}
}

// closed is the name the connection's connect got, and forgets it.
func (c *connectNames) closed(k connTuple) (string, bool) {
	name, ok := c.byConn[k]
	if ok {
		delete(c.byConn, k)
	}
	return name, ok
}
