// Package capsets reads this process's capability sets from /proc/self/status, for errors and
// warnings that say which capability is missing and how to grant it.
package capsets

import (
	"os"
	"strconv"
	"strings"
)

// Capability bits (linux/capability.h) the callers name.
const (
	NetAdmin  = 12
	SysPtrace = 19
	SysAdmin  = 21
	Perfmon   = 38
	BPF       = 39
)

// Read is one of this process's sets ("CapEff:", "CapBnd:"); false when unreadable.
func Read(field string) (uint64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return Parse(string(status), field)
}

// Parse reads a set (a line such as "CapEff:\t000001ffffffffff") from a /proc/<pid>/status text.
func Parse(status, field string) (uint64, bool) {
	for _, line := range strings.Split(status, "\n") {
		if hex, ok := strings.CutPrefix(line, field); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return v, err == nil
		}
	}
	return 0, false
}
