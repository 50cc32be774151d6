//go:build linux

package kernel

import (
	"os"
	"strconv"
	"strings"
)

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// missingCapabilities names the BPF capabilities this process lacks, from /proc/self/status.
// CAP_SYS_ADMIN covers both (and is what kernels before 5.8 require).
func missingCapabilities() []string {
	eff, ok := effectiveCapabilities()
	if !ok || eff&(1<<capSysAdmin) != 0 {
		return nil
	}
	var missing []string
	if eff&(1<<capBPF) == 0 {
		missing = append(missing, "CAP_BPF")
	}
	if eff&(1<<capPerfmon) == 0 {
		missing = append(missing, "CAP_PERFMON")
	}
	return missing
}

func effectiveCapabilities() (uint64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return v, err == nil
		}
	}
	return 0, false
}
