package procfound

import "net/netip"

// Role is which end of the connection the local socket is.
type Role uint8

const (
	Client Role = iota + 1
	Server
)

func (r Role) String() string {
	switch r {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return "unknown"
}

// Conn is one open connection's local socket.
type Conn struct {
	NetnsIno uint32
	// Local and Peer are as the socket's namespace sees them; an IPv4 peer of a dual-stack
	// socket is given as IPv4, as the BPF side reports it.
	Local, Peer netip.AddrPort
	Role        Role
	// RoleGuessed is always true: the kernel keeps no role, so it is inferred from the
	// listeners of the namespace (see roleOf).
	RoleGuessed bool
	// PID and Comm are the lowest-numbered process holding the socket, so that repeated
	// scans name the same one when several share it (a forked server's workers).
	PID  uint32
	Comm string
	// Inode is the socket's inode, unique on the node while the socket lives.
	Inode uint64
	// State is the kernel's TCP state number (include/net/tcp_states.h).
	State uint8
}

// Stats says what a Scan skipped, so the receiver can report how complete it was.
type Stats struct {
	// Processes is how many processes (thread-group leaders) were listed; Namespaces how
	// many distinct network namespaces had their tables read.
	Processes, Namespaces int
	// Vanished counts processes that exited between being listed and being read, Unreadable
	// those whose namespace or descriptors could not be read (not ptrace-readable).
	Vanished, Unreadable int
	// Malformed counts table lines that did not parse.
	Malformed int
	// Unowned counts open connections held by no process: orphans (closed by their process,
	// still finishing in the kernel) and sockets whose holder exited mid-scan.
	Unowned int
	// Truncated counts connections found but not returned, beyond the limit.
	Truncated int
}
