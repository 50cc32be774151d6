//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"time"

	"go.uber.org/zap"

	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/procfound"
)

// findInProc is the start-up scan where the kernel refuses the BPF iterators: the established
// connections that predate podnet, read from each network namespace's /proc/<pid>/net/tcp{,6},
// reported like the kernel scan's (podnet.tcp.connection.found, role guessed from the
// namespace's listeners). The kernel cannot track them from user space (it knows sockets by
// address, /proc by inode): their bytes are not counted and their closes count as untracked.
// At most limit are reported.
func findInProc(procRoot string, limit int, process, sampled bool, logger *zap.Logger) []event.Event {
	conns, st, err := procfound.Scan(procRoot, limit)
	if err != nil {
		logger.Warn("podnet: cannot scan "+procRoot+" for connections open before podnet started", zap.Error(err))
		return nil
	}
	now := uint64(time.Now().UnixNano())
	found := make([]event.Event, len(conns))
	for i, c := range conns {
		found[i] = foundEvent(c, now, process, sampled)
	}
	logger.Info("podnet found the connections that were open before it started, from /proc (the kernel refused the BPF iterators: their bytes and closes are not tracked)",
		zap.Int("connections", len(conns)), zap.Int("namespaces", st.Namespaces), zap.Int("truncated", st.Truncated),
		zap.Int("unowned", st.Unowned), zap.Int("malformed", st.Malformed))
	return found
}

// foundEvent is a /proc find as the kernel scan would have reported it, but for the bytes
// (unknown: left out) and the socket's cgroup (unknown: attribution goes by network namespace).
// process: logs.process_attributes (off: the record names no process); sampled: logs sampling is
// on, and a found connection is kept as the kernel's are, saying 1 in 1.
func foundEvent(c procfound.Conn, now uint64, process, sampled bool) event.Event {
	e := event.Event{
		Type:         event.Found,
		Role:         event.Client,
		Time:         now,
		Local:        c.Local,
		Peer:         c.Peer,
		NetnsIno:     c.NetnsIno,
		Found:        true,
		RoleGuessed:  true,
		BytesUnknown: true,
	}
	if sampled {
		e.SampleOneIn = 1
	}
	if c.Role == procfound.Server {
		e.Role = event.Server
	}
	if process {
		e.PID = c.PID
		copy(e.Comm[:], c.Comm)
	}
	return e
}
