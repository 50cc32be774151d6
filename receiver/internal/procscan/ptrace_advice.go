package procscan

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capSysPtrace is CAP_SYS_PTRACE's bit (linux/capability.h): reading another process's
// namespace links needs it.
const capSysPtrace = 19

// ptraceAdvice says what to change when other processes' namespace links are unreadable, from
// what this process holds: the capability missing, held but ineffective (a non-root user gets
// the container's capabilities only in its bounding set), or held (then something else refuses:
// the warning must not ask for what podnet has; found by an independent check).
func ptraceAdvice() string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "grant CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH) in the container's securityContext"
	}
	eff, effOK := capSet(string(status), "CapEff:")
	bnd, bndOK := capSet(string(status), "CapBnd:")
	switch {
	case effOK && eff&(1<<capSysPtrace) != 0:
		return "podnet holds CAP_SYS_PTRACE, so something else refuses: a security module (AppArmor, SELinux), or a process that made itself undumpable"
	case bndOK && bnd&(1<<capSysPtrace) != 0 && os.Geteuid() != 0:
		return fmt.Sprintf("podnet runs as uid %d, and a container's capabilities take effect only for uid 0: run it as root (runAsUser: 0) with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, or grant them as ambient capabilities", os.Geteuid())
	}
	return "add CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH to traverse their /proc directories) to the container's securityContext capabilities"
}

// capSet reads a capability set (a line such as "CapEff:\t000001ffffffffff") from a
// /proc/<pid>/status text.
func capSet(status, field string) (uint64, bool) {
	for _, line := range strings.Split(status, "\n") {
		if hex, ok := strings.CutPrefix(line, field); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return v, err == nil
		}
	}
	return 0, false
}
