//go:build linux

package procfound

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeProc is a directory laid out like /proc as far as Scan reads it, so that orphans,
// malformed lines, exited processes and limits can be tested without root. A namespace is a
// file hard-linked as each member's ns/net: stat gives every member the same inode, as nsfs
// does.
type fakeProc struct {
	t    *testing.T
	root string
	ns   map[string]string // namespace name → its file
}

func newFakeProc(t *testing.T) *fakeProc {
	return &fakeProc{t: t, root: t.TempDir(), ns: map[string]string{}}
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// process adds pid, living in namespace ns, holding the given socket inodes. tcp and tcp6 are
// the table lines its /proc/<pid>/net shows (headers added); "" leaves tcp6 out, as on a
// node with IPv6 disabled.
func (f *fakeProc) process(pid int, comm, ns string, sockets []uint64, tcp, tcp6 string) {
	dir := filepath.Join(f.root, strconv.Itoa(pid))
	for _, d := range []string{"ns", "net", "fd"} {
		f.must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	nsFile, ok := f.ns[ns]
	if !ok {
		nsFile = filepath.Join(f.root, "ns-"+ns)
		f.must(os.WriteFile(nsFile, nil, 0o644))
		f.ns[ns] = nsFile
	}
	f.must(os.Link(nsFile, filepath.Join(dir, "ns", "net")))
	f.must(os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
	f.must(os.WriteFile(filepath.Join(dir, "net", "tcp"), []byte(tcpHeader+tcp), 0o644))
	if tcp6 != "" {
		f.must(os.WriteFile(filepath.Join(dir, "net", "tcp6"), []byte(tcpHeader+tcp6), 0o644))
	}
	f.must(os.Symlink("/dev/null", filepath.Join(dir, "fd", "0")))
	for i, ino := range sockets {
		f.must(os.Symlink("socket:["+strconv.FormatUint(ino, 10)+"]", filepath.Join(dir, "fd", strconv.Itoa(i+3))))
	}
}

// netnsIno is the inode Scan reports for namespace ns.
func (f *fakeProc) netnsIno(ns string) uint32 {
	fi, err := os.Stat(f.ns[ns])
	f.must(err)
	return uint32(inodeOf(fi))
}

func (f *fakeProc) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}
