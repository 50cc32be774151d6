//go:build linux

package procfound

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lines captured from a real namespace (see tcp_line_test.go): a listener on 127.0.0.1:40065,
// both ends of a loopback connection to it, and a TIME_WAIT.
const (
	lineListener = "   0: 0100007F:9C81 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 120735340 1 00000000550edc5c 100 0 0 10 0\n"
	lineServer   = "   4: 0100007F:9C81 0100007F:9B7E 01 00000000:00000000 00:00000000 00000000     0        0 120735342 1 0000000021992a84 20 0 0 10 -1\n"
	lineClient   = "   7: 0100007F:9B7E 0100007F:9C81 01 00000000:00000000 00:00000000 00000000     0        0 120735341 2 00000000e1142f06 20 0 0 10 -1\n"
	lineTimeWait = "   1: 0100007F:A51B 0100007F:A2A0 06 00000000:00000000 03:000003A9 00000000     0        0 0 3 000000008b2a4b90\n"
	// An orphan: closed by its process, still sending its FIN (inode 0, no descriptor).
	lineOrphan = "   2: 0100007F:9B90 0100007F:9C81 04 00000000:00000000 01:00000030 00000000     0        0 0 1 00000000fda26061 20 4 0 10 -1\n"
	// Open, but its only holder is not a process Scan can read.
	lineUnheld = "   3: 0100007F:9B92 0100007F:9C81 01 00000000:00000000 00:00000000 00000000     0        0 999 1 00000000fda26062 20 4 0 10 -1\n"
	lineBroken = "   5: 0100007F:9B7E\n"
)

const serverIno, clientIno = 120735342, 120735341

func fakeNode(t *testing.T) *fakeProc {
	requireLittleEndian(t)
	f := newFakeProc(t)
	f.process(1, "init", "host", nil, lineOrphan+lineUnheld, "")
	// The namespace's tables are read through pid 50 only: the others' would add malformed
	// lines if they were read too.
	f.process(50, "nginx", "pod", []uint64{serverIno}, lineListener+lineServer+lineClient+lineTimeWait+lineBroken, "")
	f.process(100, "nginx-worker", "pod", []uint64{serverIno}, lineBroken+lineBroken, lineBroken)
	f.process(200, "curl", "pod", []uint64{clientIno}, lineBroken, lineBroken)
	// Exited between the listing and the reads: its directory is there, its links are not.
	require.NoError(t, os.Mkdir(filepath.Join(f.root, "300"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(f.root, "sys"), 0o755))
	return f
}

func TestScanFakeNode(t *testing.T) {
	f := fakeNode(t)
	conns, st, err := Scan(f.root, 100)
	require.NoError(t, err)
	pod := f.netnsIno("pod")
	ap := netip.MustParseAddrPort
	assert.Equal(t, []Conn{
		{NetnsIno: pod, Local: ap("127.0.0.1:39806"), Peer: ap("127.0.0.1:40065"), Role: Client, RoleGuessed: true, PID: 200, Comm: "curl", Inode: clientIno, State: stateEstablished},
		// Held by 50 and 100: the lowest pid is reported.
		{NetnsIno: pod, Local: ap("127.0.0.1:40065"), Peer: ap("127.0.0.1:39806"), Role: Server, RoleGuessed: true, PID: 50, Comm: "nginx", Inode: serverIno, State: stateEstablished},
	}, conns)
	assert.Equal(t, Stats{Processes: 5, Namespaces: 2, Vanished: 1, Malformed: 1, Unowned: 2}, st)
}

func TestScanLimit(t *testing.T) {
	f := fakeNode(t)
	conns, st, err := Scan(f.root, 1)
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, uint64(clientIno), conns[0].Inode, "the first in order is kept")
	assert.Equal(t, 1, st.Truncated)

	_, _, err = Scan(f.root, 0)
	assert.ErrorContains(t, err, "limit must be positive")
}

func TestScanMissingRoot(t *testing.T) {
	_, _, err := Scan(filepath.Join(t.TempDir(), "nope"), 10)
	assert.ErrorContains(t, err, "listing processes")
}
