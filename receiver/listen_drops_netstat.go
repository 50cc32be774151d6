//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/podnet/podnet/receiver/internal/procscan"
)

// namespaceListenDrops reads a network namespace's ListenDrops (TcpExt, /proc/<pid>/net/netstat,
// which shows the namespace pid is in) through process pid under procRoot. The process is checked
// to be in netns before and after the read: a pid that exited, or was reused by a process
// elsewhere, must not lend another namespace's count.
func namespaceListenDrops(procRoot string) func(pid, netns uint32) (uint64, error) {
	return func(pid, netns uint32) (uint64, error) {
		in := func() error {
			ns, err := procscan.NetnsOf(procRoot, pid)
			if err == nil && ns != netns {
				err = fmt.Errorf("process %d is in network namespace %d, not %d", pid, ns, netns)
			}
			return err
		}
		if err := in(); err != nil {
			return 0, err
		}
		data, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "net", "netstat"))
		if err != nil {
			return 0, err
		}
		if err := in(); err != nil {
			return 0, err
		}
		return tcpExtCounter(data, "ListenDrops")
	}
}

// tcpExtCounter finds a TcpExt counter in /proc/net/netstat: a line of names, then one of values.
func tcpExtCounter(netstat []byte, name string) (uint64, error) { //nolint:unparam // any TcpExt counter, by name
	lines := bytes.Split(netstat, []byte("\n"))
	for i := 0; i+1 < len(lines); i++ {
		names, ok := bytes.CutPrefix(lines[i], []byte("TcpExt:"))
		values, okValues := bytes.CutPrefix(lines[i+1], []byte("TcpExt:"))
		if !ok || !okValues {
			continue
		}
		n, v := bytes.Fields(names), bytes.Fields(values)
		for j := range n {
			if string(n[j]) == name && j < len(v) {
				return strconv.ParseUint(string(v[j]), 10, 64)
			}
		}
		return 0, fmt.Errorf("netstat: no TcpExt %s", name)
	}
	return 0, errors.New("netstat: no TcpExt lines")
}
