//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	ebpffeatures "github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/capsets"
)

// natPriority places nat_seen after every destination translation (done at PRE_ROUTING or
// LOCAL_OUT) and before source NAT (100), at both hooks it is attached to: any value in between
// sees the same, so a busy one is passed for the next (attachNetfilter).
const natPriority = 50

// natHooks are where nat_seen watches: POST_ROUTING, which forwarded pod traffic and the node's
// own cross after DNAT, and LOCAL_IN, where a connection DNAT'd to the node's own address (a
// Service endpoint in the host network: the API server, a hostNetwork DaemonSet) goes instead.
var natHooks = []link.NetfilterInetHook{link.NetfilterInetPostRouting, link.NetfilterInetLocalIn}

// ErrNoNetfilterPrograms: the kernel has no netfilter BPF programs (before 6.4), so Service
// backends cannot be read in the kernel.
var ErrNoNetfilterPrograms = errors.New("this kernel has no netfilter BPF programs (Linux 6.4+)")

// prepareNAT keeps nat_seen in spec, and tells the state programs to look connections up, only
// when Service backends are asked for and the kernel can run it; otherwise it says why not.
func prepareNAT(spec *ebpf.CollectionSpec, opts Options) error {
	if err := spec.Variables[bpf.PodnetVarBackendInMetrics].Set(opts.BackendInMetrics && opts.NATNetns != ""); err != nil {
		return err
	}
	if err := spec.Variables[bpf.PodnetVarSocketLb].Set(opts.SocketLB && opts.syscallHooks()); err != nil {
		return err
	}
	if opts.NATNetns == "" {
		delete(spec.Programs, bpf.PodnetProgNatSeen)
		return nil
	}
	// Loading a netfilter program needs CAP_NET_ADMIN: without it the whole collection would
	// fail to load.
	if eff, ok := effectiveCapabilities(); ok && eff&(1<<capsets.NetAdmin) == 0 {
		delete(spec.Programs, bpf.PodnetProgNatSeen)
		return errors.New("podnet lacks CAP_NET_ADMIN, which netfilter BPF programs need")
	}
	// Entering another namespace needs CAP_SYS_ADMIN: said before loading, with the two ways
	// out, rather than as setns's bare "operation not permitted" after it.
	if eff, ok := effectiveCapabilities(); ok && eff&(1<<capsets.SysAdmin) == 0 && !ownNetns(opts.NATNetns) {
		delete(spec.Programs, bpf.PodnetProgNatSeen)
		return fmt.Errorf("podnet lacks CAP_SYS_ADMIN, which entering the node's network namespace (%s, service_backends.node_netns) needs: "+
			"grant it, or run podnet with hostNetwork and leave node_netns unset", opts.NATNetns)
	}
	if err := ebpffeatures.HaveProgramType(ebpf.Netfilter); err != nil {
		delete(spec.Programs, bpf.PodnetProgNatSeen)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return ErrNoNetfilterPrograms
		}
		return fmt.Errorf("probing for netfilter BPF programs: %w", err)
	}
	return spec.Variables[bpf.PodnetVarNatLookup].Set(true)
}

// withoutNAT takes nat_seen out of a spec that failed to load with it, so the rest loads.
func withoutNAT(spec *ebpf.CollectionSpec) bool {
	if _, ok := spec.Programs[bpf.PodnetProgNatSeen]; !ok {
		return false
	}
	delete(spec.Programs, bpf.PodnetProgNatSeen)
	_ = spec.Variables[bpf.PodnetVarNatLookup].Set(false)
	_ = spec.Variables[bpf.PodnetVarBackendInMetrics].Set(false)
	return true
}

// attachNAT attaches nat_seen for IPv4 and IPv6 in the network namespace at path (the node's:
// where kube-proxy's rules translate). Linking needs CAP_NET_ADMIN; entering another namespace
// than podnet's own needs CAP_SYS_ADMIN.
func attachNAT(prog *ebpf.Program, path string) ([]link.Link, error) {
	var links []link.Link
	err := runInNetns(path, func() error {
		for _, family := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
			for _, hook := range natHooks {
				l, err := attachNetfilter(prog, family, hook)
				if err != nil {
					return err
				}
				links = append(links, l)
			}
		}
		return nil
	})
	if err != nil {
		for _, l := range links {
			_ = l.Close()
		}
		return nil, fmt.Errorf("attaching the netfilter program (service_backends) in %s: %w", path, err)
	}
	return links, nil
}

// natPriorities is how many priorities above natPriority are tried: the kernel takes one BPF
// netfilter link per hook and priority (EBUSY), and a second podnet on the node — a rollout's
// surge, a test beside a running collector — must not go without.
const natPriorities = 16

func attachNetfilter(prog *ebpf.Program, family link.NetfilterProtocolFamily, hook link.NetfilterInetHook) (link.Link, error) {
	var err error
	for p := int32(natPriority); p < natPriority+natPriorities; p++ {
		var l link.Link
		l, err = link.AttachNetfilter(link.NetfilterOptions{
			Program: prog, ProtocolFamily: family, Hook: hook, Priority: p,
		})
		if !errors.Is(err, unix.EBUSY) {
			return l, err
		}
	}
	return nil, err
}

// runInNetns runs fn on a thread inside the network namespace at path, or on the calling one when
// that namespace is already podnet's own. A netfilter link stays in the namespace it was made in.
func runInNetns(path string, fn func() error) error {
	target, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("the node's network namespace: %w", err)
	}
	if sameFile(target, "/proc/thread-self/ns/net") {
		return fn()
	}
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("the node's network namespace: %w", err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer back.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.EINVAL) {
				// setns's answer for a file that is no network namespace (found by an
				// independent check: the privilege hint sent them astray).
				err = fmt.Errorf("%w: it is not a network namespace (use a process's ns/net, e.g. /hostfs/proc/1/ns/net)", err)
			}
			done <- fmt.Errorf("entering %s: %w", path, err)
			return
		}
		err = fn()
		// A thread that cannot go back stays locked: it ends with this goroutine.
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// BackendsErr says why connections to Services are not followed to their backend although
// Options.NATNetns asked for it (nil when they are, or when not asked).
func (t *Tracer) BackendsErr() error { return t.natErr }

// ownNetns says whether path is this thread's network namespace (false when either is
// unreadable: entering it is then tried, and fails with its own error).
func ownNetns(path string) bool {
	target, err := os.Stat(path)
	return err == nil && sameFile(target, "/proc/thread-self/ns/net")
}

func sameFile(fi os.FileInfo, path string) bool {
	other, err := os.Stat(path)
	return err == nil && os.SameFile(fi, other)
}
