//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"
	"math/bits"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
)

// markedSetSize bounds each marked set (bpf/maps.h): the sockets that move data within one
// metrics interval. A read walks the whole set, so its size is also the read's floor
// (BenchmarkProgressReadPer10kSockets/marked, with no busy socket). More busy sockets than
// this make the reads walk every connection, counted.
const markedSetSize = 8192

// markPrograms are the marked reads' hooks (bpf/podnet.bpf.c), by tracepoint: loaded and
// attached only for marked reads. The MPTCP one only where the kernel has MPTCP (no MPTCP, no
// subflows to mark).
var markPrograms = map[string]string{
	bpf.PodnetProgSentTpBtf:      "btf_trace_tcp_sendmsg_locked",
	bpf.PodnetProgArrivedTpBtf:   "btf_trace_sk_data_ready",
	bpf.PodnetProgMptcpSentTpBtf: "btf_trace_mptcp_subflow_get_send",
}

// markHooksExist says whether the kernel has the tracepoints the marks hook (tcp_sendmsg_locked
// is 6.12+, sk_data_ready 6.3+).
func markHooksExist() bool { return kernelFeatures().markHooks }

// marksWanted says whether open loads marked reads (bpf/progress.h): the live reads then visit
// only the sockets that moved data, and `active` is counted by opens and closes. Only with the
// in-kernel aggregation (the opens and closes are counted there), tp_btf hooks, live reads, and
// a kernel that has the tracepoints.
func marksWanted(mode HookMode, opts Options) bool {
	return opts.AggregateInKernel && !opts.NoLiveReads && !opts.UnmarkedReads && mode == HooksTPBTF && markHooksExist()
}

// prepareMarks sets the marked reads up in spec, or takes their programs out and shrinks their
// sets to nothing when they are not wanted.
func prepareMarks(spec *ebpf.CollectionSpec, on bool, opts Options) error {
	size := uint32(1)
	if on {
		size = min(markedSetSize, max(opts.MaxTrackedConnections, 1))
		if opts.markedSet != 0 {
			size = opts.markedSet
		}
		if !kernelFeatures().mptcpMarks {
			delete(spec.Programs, bpf.PodnetProgMptcpSentTpBtf)
		}
	} else {
		for p := range markPrograms {
			delete(spec.Programs, p)
		}
	}
	prepareActiveMoved(spec, on, opts)
	spec.Maps[bpf.PodnetMapMarkedA].MaxEntries = size
	spec.Maps[bpf.PodnetMapMarkedB].MaxEntries = size
	spec.Maps[bpf.PodnetMapMarked].InnerMap.MaxEntries = size
	front := frontSlots(size)
	spec.Maps[bpf.PodnetMapMarkedFront].MaxEntries = 2 * front
	if err := spec.Variables[bpf.PodnetVarFrontMask].Set(front - 1); err != nil {
		return err
	}
	return spec.Variables[bpf.PodnetVarMarkedReads].Set(on)
}

// frontSlots is the size of each half of the sets' front (bpf/maps.h marked_front): the sets'
// size, rounded up to a power of two so that a slot is a mask of the socket's hash.
func frontSlots(size uint32) uint32 {
	return 1 << bits.Len32(max(size, 1)-1)
}

// marks alternates the two marked sets between the hooks and the reads, and turns the kernel's
// opens minus closes into the open connections a drain reports.
type marks struct {
	alternating // the two sets: the hooks mark the current one
	readSet     *ebpf.Variable
	readAll     *ebpf.Variable
	half        *ebpf.Variable // mark_half: the front's half the hooks fill, with the set
	full        uint64         // COUNTER_MARK_FULL at the last read
	// skips reads the runs of the mark programs the kernel skipped (markSkips); skipped is
	// what it read before the last swap.
	skips   func() (uint64, error)
	skipped uint64
	open    openCounts
	moved   *activeMoved // closes' -1s for keys their interval map lacked
}

// newMarks points the hooks at the first set; before attaching, or a mark would find no set.
func newMarks(coll *ebpf.Collection) (*marks, error) {
	m := &marks{
		alternating: alternating{
			what: "marked sets",
			slot: coll.Maps[bpf.PodnetMapMarked],
			maps: [2]*ebpf.Map{coll.Maps[bpf.PodnetMapMarkedA], coll.Maps[bpf.PodnetMapMarkedB]},
		},
		readSet: coll.Variables[bpf.PodnetVarReadSet],
		readAll: coll.Variables[bpf.PodnetVarReadAll],
		half:    coll.Variables[bpf.PodnetVarMarkHalf],
		skips:   func() (uint64, error) { return markSkips(coll) },
		open:    newOpenCounts(),
	}
	if err := m.point(); err != nil {
		return nil, fmt.Errorf("map %s: %w", bpf.PodnetMapMarked, err)
	}
	var err error
	if m.moved, err = newActiveMoved(coll); err != nil {
		return nil, err
	}
	return m, nil
}

// attachMarks attaches the hooks that mark sockets moving data.
func attachMarks(coll *ebpf.Collection) ([]link.Link, error) {
	var links []link.Link
	for p := range markPrograms {
		prog := coll.Programs[p]
		if prog == nil {
			continue // not loaded on this kernel (prepareMarks)
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			for _, l := range links {
				_ = l.Close()
			}
			return nil, explain("attaching "+p, err)
		}
		links = append(links, l)
	}
	return links, nil
}

// beforeRead hands the hooks the other set (and its half of the front) and tells the read to
// take the one they marked, and to walk every connection too when a socket that moved data may
// be missing from it: a mark found its set full, or the kernel skipped a mark program's run
// (sk_data_ready in a softirq that interrupted the same program: its recursion guard). The slot
// update returns once no program can still hold the old set (map-in-map updates wait for an RCU
// grace period), and the half is switched before it, so the read takes a set and a half nobody
// writes. markFull reads COUNTER_MARK_FULL after the swap, so it covers every mark into the set
// being read. A skip has no set to tell: the skips are read before and after the swap, and the
// read walks everything when any came after the previous swap's first reading (a skip around
// a swap makes both reads walk).
func (m *marks) beforeRead(markFull func() (uint64, error)) error {
	skippedBefore, err := m.skips()
	if err != nil {
		return err
	}
	old := m.current
	if err := m.half.Set(uint32(1 - old)); err != nil {
		return fmt.Errorf("switching the marked sets' front: %w", err)
	}
	if _, err := m.swap(); err != nil {
		_ = m.half.Set(uint32(old)) // the hooks keep marking the set and half they had
		return err
	}
	full, err := markFull()
	if err != nil {
		return err
	}
	skippedAfter, err := m.skips()
	if err != nil {
		return err
	}
	all := full != m.full || skippedAfter != m.skipped
	m.full, m.skipped = full, skippedBefore
	if err := m.readSet.Set(uint8(old)); err != nil {
		return err
	}
	return m.readAll.Set(b2u8(all))
}

// markSkips sums the runs of the mark programs that the kernel skipped. Not loss: each makes a
// read walk every connection (beforeRead); Counters reports them as covered.
func markSkips(coll *ebpf.Collection) (uint64, error) {
	var n uint64
	for name := range markPrograms {
		p := coll.Programs[name]
		if p == nil {
			continue // not loaded on this kernel (prepareMarks)
		}
		st, err := p.Stats()
		if err != nil {
			return 0, fmt.Errorf("reading %s's statistics: %w", name, err)
		}
		n += st.RecursionMisses
	}
	return n, nil
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// kernelHas says whether the kernel's BTF names a type (a tracepoint's btf_trace_* typedef).
func kernelHas(spec *btf.Spec, name string) bool {
	var td *btf.Typedef
	return spec.TypeByName(name, &td) == nil
}
