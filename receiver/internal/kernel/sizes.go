//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
)

// mapSettings names the setting that sizes each map a user can make too large.
var mapSettings = map[string]string{
	bpf.PodnetMapAggregates:   "max_metric_series",
	bpf.PodnetMapActiveMoved:  "max_tracked_connections",
	bpf.PodnetMapActiveMovedA: "max_tracked_connections",
	bpf.PodnetMapActiveMovedB: "max_tracked_connections",
	bpf.PodnetMapConns:        "max_tracked_connections",
	bpf.PodnetMapEvents:       "ring_buffer_size",
}

// sizeError says which setting to lower when the kernel refused to create a map podnet sized
// from one (too large for the kernel's limits, or for the memory it will lend).
func sizeError(err error, opts Options) error {
	var verifier *ebpf.VerifierError
	if errors.As(err, &verifier) || errors.Is(err, unix.EPERM) || outOfDescriptors(err) {
		return err // not the size: the verifier, a missing capability or descriptor (explain says which)
	}
	for name, setting := range mapSettings {
		if !strings.Contains(err.Error(), "map "+name+":") {
			continue
		}
		size := map[string]uint32{
			bpf.PodnetMapAggregates:   opts.MaxAggregates,
			bpf.PodnetMapActiveMoved:  opts.MaxTrackedConnections,
			bpf.PodnetMapActiveMovedA: opts.MaxTrackedConnections,
			bpf.PodnetMapActiveMovedB: opts.MaxTrackedConnections,
			bpf.PodnetMapConns:        opts.MaxTrackedConnections,
			bpf.PodnetMapEvents:       opts.RingBufferSize,
		}[name]
		fix := "lower " + setting
		if errors.Is(err, unix.ENOMEM) {
			// Since 5.11 map memory is charged to the creating process's memory cgroup: in a
			// pod, its memory limit (the connection table alone takes ~224 B per entry).
			fix += ", or raise the collector's memory limit (BPF maps are charged to its memory cgroup)"
		}
		return fmt.Errorf("the kernel refused the %s map sized by %s (%d): %s: %w", name, setting, size, fix, err)
	}
	return err
}
