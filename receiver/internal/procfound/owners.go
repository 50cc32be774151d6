//go:build linux

package procfound

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// claimOwners gives each found socket the lowest pid holding it, reading the descriptor
// links of pids in ascending order, and stops once every socket has one. byInode indexes
// conns.
func claimOwners(procRoot string, pids []uint32, conns []Conn, byInode map[uint64]int, st *Stats) {
	unclaimed := len(conns)
	link := make([]byte, 64) // "socket:[<u64>]" fits; longer targets are not sockets
	for _, pid := range pids {
		if unclaimed == 0 {
			return
		}
		claimed, err := claimFromProcess(procRoot, pid, conns, byInode, link)
		switch {
		case gone(err):
			st.Vanished++
		case err != nil:
			st.Unreadable++
		}
		unclaimed -= claimed
	}
}

// claimFromProcess claims the unclaimed sockets pid holds and returns how many. Descriptors
// closed while it reads are skipped. The links are read with readlinkat on the open
// directory, so no path is built per descriptor.
func claimFromProcess(procRoot string, pid uint32, conns []Conn, byInode map[uint64]int, link []byte) (int, error) {
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
	f, err := os.Open(dir + "/fd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fds, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	dirfd := int(f.Fd())
	claimed := 0
	var comm string
	for _, fd := range fds {
		n, err := unix.Readlinkat(dirfd, fd, link)
		if err != nil {
			continue
		}
		i, ok := byInode[socketInode(link[:n])]
		if !ok || conns[i].PID != 0 {
			continue
		}
		if claimed == 0 {
			comm = readComm(dir)
		}
		conns[i].PID, conns[i].Comm = pid, comm
		claimed++
	}
	return claimed, nil
}

// socketInode parses a descriptor link "socket:[12345]"; 0 (no socket has it) otherwise.
func socketInode(link []byte) uint64 {
	rest, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok {
		return 0
	}
	num, ok := bytes.CutSuffix(rest, []byte("]"))
	if !ok {
		return 0
	}
	ino, _ := parseDecimal(num)
	return ino
}

// readComm returns the process's name, or "" if it exited meanwhile.
func readComm(procDir string) string {
	b, err := os.ReadFile(procDir + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSuffix(b, []byte("\n")))
}
