package kernel

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// explain turns a load or attach failure into an error that says what is missing and what to
// do, keeping the original error wrapped for errors.Is.
func explain(step string, err error) error {
	switch {
	case errors.Is(err, btf.ErrNotFound):
		return fmt.Errorf("%s: the kernel exposes no BTF (/sys/kernel/btf/vmlinux): podnet's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 5.8): %w", step, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: permission denied: podnet needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN on kernels before 5.8), and CAP_SYS_RESOURCE where the memlock rlimit still applies (before 5.11); run the collector with them (see README, Security): %w", step, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: this kernel lacks a BPF feature podnet needs (ring buffers need 5.8+, BTF-enabled programs need kernel BTF): %w", step, err)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: tracepoint not found: is tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing) and the kernel built with CONFIG_FTRACE_SYSCALLS?: %w", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}
