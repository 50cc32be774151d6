//go:build linux

package procfound

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
)

// namespaceTable is what one network namespace's tcp and tcp6 tables hold that matters.
type namespaceTable struct {
	open      []socketLine
	listeners listeners
	malformed int
}

// readTables reads the tables of the namespace pid lives in. buf is reused across
// namespaces, so that a scan grows one buffer to the largest table instead of allocating per
// namespace. IPv6 may be disabled on the node (no tcp6 file): that namespace then has no
// IPv6 sockets.
func readTables(procRoot, pid string, buf *bytes.Buffer) (namespaceTable, error) {
	t := namespaceTable{listeners: listeners{}}
	dir := procRoot + "/" + pid + "/net/"
	if err := readFile(dir+"tcp", buf); err != nil {
		return t, err
	}
	t.parse(buf.Bytes(), false)
	err := readFile(dir+"tcp6", buf)
	switch {
	case errors.Is(err, fs.ErrNotExist) && processExists(procRoot, pid):
		return t, nil
	case err != nil:
		return t, err
	}
	t.parse(buf.Bytes(), true)
	return t, nil
}

func (t *namespaceTable) parse(data []byte, v6 bool) {
	// The first line is the column header.
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	} else {
		data = nil
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		s, ok := parseLine(line, v6)
		switch {
		case !ok:
			t.malformed++
		case s.state == stateListen:
			t.listeners.add(s.local)
		case openState(s.state):
			t.open = append(t.open, s)
		}
	}
}

func readFile(path string, buf *bytes.Buffer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf.Reset()
	_, err = buf.ReadFrom(f)
	return err
}

func processExists(procRoot, pid string) bool {
	_, err := os.Stat(procRoot + "/" + pid)
	return err == nil
}
