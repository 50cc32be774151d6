//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
)

// sizing is the setting that sizes a map a user can make too large, and its value.
type sizing struct {
	setting string
	size    uint32
}

// mapSizings says, per map, which setting sized it.
func mapSizings(opts Options) map[string]sizing {
	conns := sizing{"max_tracked_connections", opts.MaxTrackedConnections}
	return map[string]sizing{
		bpf.PodnetMapAggregates:   {"max_metric_series", opts.MaxAggregates},
		bpf.PodnetMapActiveMoved:  conns,
		bpf.PodnetMapActiveMovedA: conns,
		bpf.PodnetMapActiveMovedB: conns,
		bpf.PodnetMapConns:        conns,
		bpf.PodnetMapEvents:       {"ring_buffer_size", opts.RingBufferSize},
	}
}

// sizeError says which setting to lower when the kernel refused to create a map podnet sized
// from one (too large for the kernel's limits, or for the memory it will lend).
func sizeError(err error, opts Options) error {
	var verifier *ebpf.VerifierError
	if errors.As(err, &verifier) || errors.Is(err, unix.EPERM) || outOfDescriptors(err) {
		return err // not the size: the verifier, a missing capability or descriptor (explain says which)
	}
	for name, by := range mapSizings(opts) {
		if !strings.Contains(err.Error(), "map "+name+":") {
			continue
		}
		setting, size := by.setting, by.size
		fix := "lower " + setting
		if errors.Is(err, unix.ENOMEM) {
			// Since 5.11 map memory is charged to the creating process's memory cgroup: in a
			// pod, its memory limit (the connection table alone takes ~224 B per entry).
			fix += ", or raise the collector's memory limit (BPF maps are charged to its memory cgroup)"
		}
		return fmt.Errorf("the kernel refused the %s map sized by %s (%d): %s: %w", name, setting, size, fix, err)
	}
	if errors.Is(err, unix.ENOMEM) && strings.Contains(err.Error(), "map ") {
		// Another map took the last of the memory cgroup's room (which one varies from run
		// to run: found by an independent review, an error with no advice at all).
		return fmt.Errorf("the kernel could not allocate memory for a BPF map: raise the collector's memory limit (BPF maps are charged "+
			"to its memory cgroup), or lower max_tracked_connections (%d), max_metric_series (%d) or ring_buffer_size (%d), which size "+
			"the largest maps: %w", opts.MaxTrackedConnections, opts.MaxAggregates, opts.RingBufferSize, err)
	}
	return err
}
