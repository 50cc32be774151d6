//go:build linux

package kernel

import (
	"fmt"
	"os"

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
	if bnd, ok := capsets.Read("CapBnd:"); ok && bnd&(1<<capsets.BPF) != 0 && bnd&(1<<capsets.Perfmon) != 0 && os.Geteuid() != 0 {
		return fmt.Sprintf("the container grants them, but podnet runs as uid %d and a container's capabilities take effect only for uid 0: run it as root (runAsUser: 0), or grant them as ambient capabilities", os.Geteuid())
	}
	return "add them to the container's securityContext"
}

func effectiveCapabilities() (uint64, bool) {
	return capsets.Read("CapEff:")
}
