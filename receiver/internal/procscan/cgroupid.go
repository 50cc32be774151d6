package procscan

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileidKernfs is the kernel's FILEID_KERNFS: cgroup2 exports its directories as file handles
// whose 8 bytes are the cgroup id (the kernfs node id), which is what lets a cgroup be opened
// by id without walking the tree (bpftrace's cgroup_path does the same).
const fileidKernfs = 0xfe

// errNoHandles means the kernel refused open_by_handle_at for lack of CAP_DAC_READ_SEARCH.
var errNoHandles = errors.New("open_by_handle_at not permitted")

// pathOf returns the path of the cgroup with this id from the hierarchy's root, or "" if the
// cgroup no longer exists. It costs a few system calls, not a walk.
func (c cgroupFS) pathOf(id uint64) (string, error) {
	mount, err := unix.Open(c.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(mount)
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(mount, unix.NewFileHandle(fileidKernfs, b[:]), unix.O_RDONLY|unix.O_CLOEXEC)
	switch {
	case errors.Is(err, unix.EPERM):
		return "", errNoHandles
	case errors.Is(err, unix.ESTALE), errors.Is(err, unix.ENOENT):
		return "", nil // removed since the event: nothing to attribute it to
	case err != nil:
		return "", err
	}
	defer unix.Close(fd)
	// The link names the directory in this process's mount namespace, under c.dir.
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	rel, _ := strings.CutPrefix(target, c.dir)
	return rel, nil
}
