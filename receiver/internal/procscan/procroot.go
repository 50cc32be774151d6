package procscan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hostAnchor is the process whose namespaces are the host's: kthreadd, pid 2 in the host's
// pid namespace. Kernel threads never leave the initial namespaces, and unlike pid 1 (which
// every pid namespace has, and whose links a supervisor may keep unreadable) its presence
// proves the proc root is the host's.
const hostAnchor = "2"

// CheckProcRoot tells whether procRoot is a /proc this process can attribute sockets from:
// the host's, and readable deeply enough (another process's namespace links need ptrace-read
// access). The error says what to change.
func CheckProcRoot(procRoot string) error {
	fi, err := os.Stat(procRoot)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("proc root %q does not exist: in a container, mount the host's / (hostPath) at /hostfs and set proc_root to /hostfs/proc", procRoot)
	case err != nil:
		return fmt.Errorf("proc root %q: %w", procRoot, err)
	case !fi.IsDir():
		return fmt.Errorf("proc root %q is not a directory", procRoot)
	}
	comm, err := os.ReadFile(filepath.Join(procRoot, hostAnchor, "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "kthreadd" {
		return fmt.Errorf("proc root %q is not the host's: pid %s is not kthreadd; in Kubernetes, run with hostPID: true and mount the host's /proc", procRoot, hostAnchor)
	}
	link := HostNetnsLink(procRoot)
	_, err = readNetns(link)
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot read %s: reading other processes' namespace links needs CAP_SYS_PTRACE: %s: %w", link, ptraceAdvice(), err)
	case err != nil:
		return fmt.Errorf("proc root %q: %w", procRoot, err)
	}
	return nil
}

// HostNetnsLink is the link to the node's network namespace under procRoot: kthreadd's.
func HostNetnsLink(procRoot string) string {
	return filepath.Join(procRoot, hostAnchor, "ns", "net")
}

// HostUTSLink is the link to the node's UTS namespace (its hostname) under procRoot: kthreadd's.
func HostUTSLink(procRoot string) string {
	return filepath.Join(procRoot, hostAnchor, "ns", "uts")
}

// HostNetns is the inode of the host's network namespace, read through procRoot.
func HostNetns(procRoot string) (uint32, error) {
	return readNetns(HostNetnsLink(procRoot))
}

// readNetns returns the inode of a network namespace link, which the kernel spells
// "net:[4026531840]". Namespace inodes come from a 32-bit allocator (proc_inum), matching
// the u32 the BPF side reads from ns.inum.
func readNetns(link string) (uint32, error) {
	target, err := os.Readlink(link)
	if err != nil {
		return 0, err
	}
	num, okPrefix := strings.CutPrefix(target, "net:[")
	num, okSuffix := strings.CutSuffix(num, "]")
	ino, err := strconv.ParseUint(num, 10, 32)
	if !okPrefix || !okSuffix || err != nil {
		return 0, fmt.Errorf("%s: unexpected link target %q", link, target)
	}
	return uint32(ino), nil
}

// NetnsOf returns the network namespace inode of process pid under the proc root.
func NetnsOf(procRoot string, pid uint32) (uint32, error) {
	return readNetns(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "ns", "net"))
}
