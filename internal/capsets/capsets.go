// Package capsets reads this process's capability sets from /proc/self/status, for errors and
// warnings that say which capability is missing and how to grant it.
package capsets

import (
	"fmt"
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

// GrantedToNonRoot says whether the bounding set holds every one of caps while this process runs
// as a non-root user: a container grants its capabilities into the bounding set, and only uid 0
// gets them effective there (found by an independent check), so granting them again changes
// nothing.
func GrantedToNonRoot(caps ...int) bool {
	bnd, ok := Read("CapBnd:")
	if !ok || os.Geteuid() == 0 {
		return false
	}
	for _, c := range caps {
		if bnd&(1<<c) == 0 {
			return false
		}
	}
	return true
}

// NonRootFix is what to do in that case; with names what the root user runs with ("" for the
// capabilities in question).
func NonRootFix(with string) string {
	return fmt.Sprintf("podnet runs as uid %d and a container's capabilities take effect only for uid 0: run it as root (runAsUser: 0)%s, or grant them as ambient capabilities", os.Geteuid(), with)
}
