package procscan

import (
	"github.com/podnet/podnet/internal/capsets"
)

// ptraceAdvice says what to change when other processes' namespace links are unreadable, from
// what this process holds: the capability missing, held but ineffective (a non-root user gets
// the container's capabilities only in its bounding set), or held (then something else refuses:
// the warning must not ask for what podnet has; found by an independent check).
func ptraceAdvice() string {
	eff, effOK := capsets.Read("CapEff:")
	switch {
	case effOK && eff&(1<<capsets.SysPtrace) != 0:
		return "podnet holds CAP_SYS_PTRACE, so something else refuses: a security module (AppArmor, SELinux), or a process that made itself undumpable"
	case capsets.GrantedToNonRoot(capsets.SysPtrace):
		return capsets.NonRootFix(" with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH")
	}
	return "add CAP_SYS_PTRACE to the container's securityContext capabilities (and CAP_DAC_READ_SEARCH, with which a new pod's cgroup is opened by its id)"
}
