//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/podnet/podnet/bpf"
)

// iteratorPrograms are the programs user space runs rather than the kernel (bpf/progress.h):
// the live progress of open connections (a raw_tp program walking `conns` with
// bpf_for_each_map_elem, run with BPF_PROG_TEST_RUN: 5.13+; map-element iterators would do, but
// kernels like this one refuse them with EPERM) and the start-up scan (iter/task_file with
// bpf_sock_from_file: 5.11+). A kernel that refuses them loads everything else without them.
var iteratorPrograms = []string{
	bpf.PodnetProgProgressCast, bpf.PodnetProgProgressProbed, bpf.PodnetProgFindListeners, bpf.PodnetProgFindConnections,
	bpf.PodnetProgScanListenDrops, bpf.PodnetProgScanListeners,
}

// iterators are the live-progress program and the start-up scan's attached iterator links.
type iterators struct {
	progress     *ebpf.Program
	listenerWalk *ebpf.Program // the listener scan's walk of `listeners`
	listeners    *link.Iter
	found        *link.Iter
	listenDrops  *link.Iter
}

// progressProgram is the live-progress variant open keeps: plain loads through bpf_rdonly_cast
// where the kernel has it, probe reads elsewhere.
func progressProgram(opts Options) (keep, drop string) {
	if !opts.ProbedReads && castSupported() {
		return bpf.PodnetProgProgressCast, bpf.PodnetProgProgressProbed
	}
	return bpf.PodnetProgProgressProbed, bpf.PodnetProgProgressCast
}

func attachIterators(coll *ebpf.Collection) (*iterators, error) {
	it := &iterators{progress: coll.Programs[bpf.PodnetProgProgressCast], listenerWalk: coll.Programs[bpf.PodnetProgScanListeners]}
	if it.progress == nil {
		it.progress = coll.Programs[bpf.PodnetProgProgressProbed]
	}
	var err error
	if it.listeners, err = link.AttachIter(link.IterOptions{Program: coll.Programs[bpf.PodnetProgFindListeners]}); err != nil {
		return it, fmt.Errorf("attaching the start-up scan: %w", err)
	}
	if it.found, err = link.AttachIter(link.IterOptions{Program: coll.Programs[bpf.PodnetProgFindConnections]}); err != nil {
		return it, fmt.Errorf("attaching the start-up scan: %w", err)
	}
	if it.listenDrops, err = link.AttachIter(link.IterOptions{Program: coll.Programs[bpf.PodnetProgScanListenDrops]}); err != nil {
		return it, fmt.Errorf("attaching the listener scan: %w", err)
	}
	return it, nil
}

func (it *iterators) close() {
	for _, l := range []*link.Iter{it.listeners, it.found, it.listenDrops} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// run runs one iterator to its end and returns what its program wrote.
func run(l *link.Iter) ([]byte, error) {
	rd, err := l.Open()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// IteratorsUnavailable says why open connections are neither read live nor found at start on
// this kernel (nil when they are): connections then count only from their open, bytes only at
// their close, and `active` stays unknown.
func (t *Tracer) IteratorsUnavailable() error { return t.iterErr }

// readProgress runs the live-progress program: each open connection counted active and its
// growth since the last read added, in the current aggregation interval map. The caller holds
// the intervals' lock, so the map it writes is the one the next drain takes.
func (t *Tracer) readProgress() error {
	if t.iters == nil || t.noLiveReads || t.progressDone {
		return nil
	}
	if t.marks != nil {
		err := t.marks.beforeRead(func() (uint64, error) { return t.sumCounter(bpf.PodnetCounterCOUNTER_MARK_FULL) })
		if err != nil {
			return err
		}
	}
	_, err := t.iters.progress.Run(&ebpf.RunOptions{})
	return err
}

// eventSize is the record the start-up scan writes per found connection.
const eventSize = int(unsafe.Sizeof(bpf.PodnetEvent{}))

// FindExisting runs the start-up scan once, after the hooks are attached (Open does that):
// every established TCP connection that some process holds and podnet does not track yet is
// tracked from now (its bytes so far are not counted; its close is) and handed to fn as an
// EVENT_FOUND event with a guessed role. A connection opened meanwhile is tracked by the hooks
// and skipped here; one closed meanwhile is reported by at most one of the two. Returns how
// many were found.
func (t *Tracer) FindExisting(fn func(*bpf.PodnetEvent)) (int, error) {
	if t.iters == nil {
		return 0, t.iterErr
	}
	defer t.clearListenPorts()
	if t.scans++; t.scans == 0 {
		t.scans = 1 // 0 marks connections no scan found
	}
	if err := t.coll.Variables[bpf.PodnetVarScanId].Set(t.scans); err != nil {
		return 0, fmt.Errorf("numbering the start-up scan: %w", err)
	}
	// What a scan that ended early owes (bpf/progress.h, owed) is written first by this one:
	// those connections are tracked and marked reported already.
	if _, err := run(t.iters.listeners); err != nil {
		return 0, fmt.Errorf("scanning listeners: %w", err)
	}
	t.listenersFound = true // listeners hold every listener now (ListenDrops)
	read := run
	if t.readScan != nil {
		read = t.readScan
	}
	// The kernel tracks every connection whose record was read, also when a later read fails:
	// hand on every whole record read before any error.
	out, err := read(t.iters.found)
	whole := len(out) - len(out)%eventSize
	n := 0
	for rec := range slices.Chunk(out[:whole], eventSize) {
		e := (*bpf.PodnetEvent)(unsafe.Pointer(unsafe.SliceData(rec)))
		fn(e)
		n++
	}
	if err != nil {
		return n, fmt.Errorf("scanning connections (%d found before the error): %w", n, err)
	}
	if whole != len(out) {
		return n, fmt.Errorf("start-up scan: %d bytes is not a whole number of %d-byte records", len(out), eventSize)
	}
	return n, nil
}

// clearListenPorts empties the scan's listener map: it is only right at the scan.
func (t *Tracer) clearListenPorts() {
	m := t.coll.Maps[bpf.PodnetMapListenPorts]
	var k bpf.PodnetListenPort
	for m.NextKey(nil, &k) == nil {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return
		}
	}
}
