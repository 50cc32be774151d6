//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// explain turns a load or attach failure into an error that says what is missing and what to
// do, keeping the original error wrapped for errors.Is.
func explain(step string, err error) error {
	// Before the verifier's case: cilium/ebpf wraps a load that found no free descriptor in a
	// VerifierError too, which read as a kernel podnet does not support.
	switch {
	case errors.Is(err, unix.ENFILE) || strings.Contains(err.Error(), unix.ENFILE.Error()):
		return fmt.Errorf("%s: the node is out of file descriptors (fs.file-max, /proc/sys/fs/file-nr): %w", step, err)
	case outOfDescriptors(err):
		return fmt.Errorf("%s: too many open files: the collector's file descriptor limit (RLIMIT_NOFILE, %s) is too low for podnet's programs, maps, links and ring buffers; raise it (ulimit -n, the container runtime's default is 1048576, or LimitNOFILE in a systemd unit): %w", step, nofile(), err)
	}
	// A verifier that rejects a program answers EACCES too, but with a log: that is not
	// about privileges, and telling the user to add capabilities would send them astray.
	var verifier *ebpf.VerifierError
	if errors.As(err, &verifier) && len(verifier.Log) > 0 {
		return fmt.Errorf("%s: the kernel's BPF verifier rejected a podnet program: this kernel differs from those podnet is tested on; please report its version (uname -r) with this error (hooks: tracepoint may load where tp_btf does not): %w", step, err)
	}
	switch {
	case errors.Is(err, btf.ErrNotFound), errors.Is(err, ebpf.ErrNotSupported) && !kernelBTF():
		return fmt.Errorf("%s: the kernel exposes no BTF (%s): podnet's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 5.8): %w", step, vmlinuxBTF, err)
	case strings.Contains(err.Error(), coreKernelSpec) && !kernelBTF():
		// There but unparsable (found by an independent check: an empty file over it said
		// only "parsing .BTF header: read header: buffer too small").
		return fmt.Errorf("%s: the kernel's BTF (%s) cannot be read: a file that is empty, truncated or not the running kernel's (something mounted over it? in a container, leave /sys/kernel/btf as the host has it): %w", step, vmlinuxBTF, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		err = withoutMemlockHint(err)
		if missing := missingCapabilities(); len(missing) > 0 {
			return fmt.Errorf("%s: permission denied: the collector lacks %s; podnet needs CAP_BPF and CAP_PERFMON (%s, see README, Security): %w", step, strings.Join(missing, " and "), capabilitiesFix(), err)
		}
		return fmt.Errorf("%s: permission denied although CAP_BPF and CAP_PERFMON are present: kernels before 5.8 need CAP_SYS_ADMIN, before 5.11 CAP_SYS_RESOURCE (memlock); also check kernel.unprivileged_bpf_disabled and LSM policy (see README, Security): %w", step, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: this kernel lacks a BPF feature podnet needs (ring buffers need 5.8+, BTF-enabled programs need kernel BTF): %w", step, err)
	case errors.Is(err, os.ErrNotExist), strings.Contains(err.Error(), tracefsUnmounted):
		return fmt.Errorf("%s: tracepoint not found: is tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing) and the kernel built with CONFIG_FTRACE_SYSCALLS?: %w", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// memlockHint is what cilium/ebpf (map.go, prog.go) appends to every EPERM of a map create or a
// program load. Beside podnet's own explanation it misleads: a missing capability is the usual
// cause, and kernels since 5.11 charge BPF memory to the cgroup, not RLIMIT_MEMLOCK (which
// Open raises anyway); the explanation names memlock for older kernels itself.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// withoutMemlockHint is err with memlockHint left out of its message, still wrapping err.
func withoutMemlockHint(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, memlockHint) {
		return err
	}
	return &rewordedError{msg: strings.ReplaceAll(msg, memlockHint, ""), err: err}
}

// rewordedError says msg and unwraps to err, so errors.Is and errors.As still see the cause.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }

// vmlinuxBTF is where the kernel exposes its BTF, which CO-RE reads.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// coreKernelSpec is how cilium/ebpf says that applying CO-RE relocations failed reading the
// kernel's BTF (a plain error: a parse failure has no sentinel; a missing file is
// ErrNotSupported).
const coreKernelSpec = "load kernel spec"

// tracefsUnmounted is how cilium/ebpf says it found no tracefs (a plain error, no errno).
const tracefsUnmounted = "neither debugfs nor tracefs are mounted"

// kernelBTF says whether the kernel's BTF can be read: cilium/ebpf reports its absence as "not
// supported" (ErrNotSupported), like a missing kernel feature, and the two need different fixes.
func kernelBTF() bool {
	_, err := btf.LoadKernelSpec()
	return err == nil
}

// outOfDescriptors says whether err is the collector's or the node's file descriptor limit. By
// its text too: cilium/ebpf formats some errors with %v (a descriptor's dup), which keeps the
// errno's words and loses the errno.
func outOfDescriptors(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		strings.Contains(err.Error(), unix.EMFILE.Error()) // ENFILE's text begins the same
}

// descriptorShortage is err, said as the descriptor shortage it is where the collector had fewer
// descriptors free than spec's maps and programs need at once. cilium/ebpf, when a map create
// fails, probes the kernel for the map's flags to explain it; out of descriptors, the probe fails
// too and the error says "prealloc maps not supported" (BPF_F_NO_PREALLOC, 4.6), with no errno
// (found in CI: a descriptor-limit test said so at 10 descriptors free).
func descriptorShortage(spec *ebpf.CollectionSpec, err error) error {
	if outOfDescriptors(err) || !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	need := len(spec.Maps) + len(spec.Programs)
	if free, ok := freeDescriptors(); ok && free < need {
		return fmt.Errorf("%w: %d descriptors free, %d maps and programs to load (%w)", unix.EMFILE, free, need, err)
	}
	return err
}

// freeDescriptors is how many more descriptors the collector may open (RLIMIT_NOFILE's soft
// limit less those open); false when it cannot tell.
func freeDescriptors() (int, bool) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	return int(l.Cur) - len(open), true
}

// nofile is the collector's descriptor limit as "soft N, hard M", for the error that names it.
func nofile() string {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("soft %d, hard %d", l.Cur, l.Max)
}
