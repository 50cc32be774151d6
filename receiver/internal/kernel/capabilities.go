//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"
	"strings"

	"github.com/podnet/podnet/internal/capsets"
)

// missingCapabilities names the BPF capabilities this process lacks, from /proc/self/status.
// CAP_SYS_ADMIN covers both (and is what kernels before 5.8 require).
func missingCapabilities() []string {
	eff, ok := effectiveCapabilities()
	if !ok || eff&(1<<capsets.SysAdmin) != 0 {
		return nil
	}
	var missing []string
	if eff&(1<<capsets.BPF) == 0 {
		missing = append(missing, "CAP_BPF")
	}
	if eff&(1<<capsets.Perfmon) == 0 {
		missing = append(missing, "CAP_PERFMON")
	}
	return missing
}

// capabilitiesFix says how to give podnet the capabilities it lacks: a non-root user gets the
// container's capabilities only in its bounding set, where adding them again changes nothing
// (found by an independent check).
func capabilitiesFix() string {
	if capsets.GrantedToNonRoot(capsets.BPF, capsets.Perfmon) {
		return "the container grants them, but " + capsets.NonRootFix("")
	}
	return "add them to the container's securityContext"
}

func effectiveCapabilities() (uint64, bool) {
	return capsets.Read("CapEff:")
}

// MissingCapabilities says which BPF capabilities podnet lacks and how to grant them, or ""
// when it has them: for an error that stops Start before the kernel side is loaded, so that
// one error lists everything missing rather than one capability per attempt.
func MissingCapabilities() string {
	missing := missingCapabilities()
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("it also lacks %s, which loading the kernel programs needs (%s)", strings.Join(missing, " and "), capabilitiesFix())
}
