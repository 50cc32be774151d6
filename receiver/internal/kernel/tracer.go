//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
)

// Tracer is podnet's programs loaded and attached, and the reader of their ring buffer.
type Tracer struct {
	events     EventReader // nil when aggregating in the kernel
	coll       *ebpf.Collection
	links      []link.Link
	mode       HookMode
	castReads  bool
	cgroupIDs  bool
	skipped    []error
	counters   *ebpf.Map
	aggregates *intervals // the in-kernel aggregation's maps; written by the live-progress reads in both modes
	iters      *iterators // nil when iterErr says why
	iterErr    error
	scans      uint8 // the last start-up scan's number (bpf/progress.h scan_id)
	// listenersFound: a start-up scan put the listeners that predate podnet in `listeners`.
	listenersFound bool
	// noLiveReads: the programs were told nothing reads open connections (Options.NoLiveReads).
	noLiveReads bool
	// noListenerScan: the programs keep no listeners (Options.NoListenerScan).
	noListenerScan bool
	marks          *marks // nil unless the live reads are marked (bpf/progress.h)
	// progressDone: Detach read the open connections for the last time (lastProgress); the
	// entries are not kept any more. Guarded by aggregates.mu.
	progressDone bool
	natErr       error // why Service backends are not read although asked for (Options.NATNetns)
	// readScan reads the start-up scan's output in place of run: tests pause between reads.
	readScan func(*link.Iter) ([]byte, error)
	// counting is when the state programs, which count every connection, began to attach.
	counting time.Time
	// counted is when Detach told the programs to stop reporting (cut); zero before.
	counted time.Time
}

// CountingSince is when the programs began counting connections: what a metric series
// counted from Start covers (loading and verifying them, before, took up to a second).
func (t *Tracer) CountingSince() time.Time { return t.counting }

// CountedUntil is when Detach told the programs to stop reporting: every connection counted
// was made before it, and every one that ended before it was counted (a run that had not read
// the flag yet still reports, and Detach waits for it). Zero before Detach.
func (t *Tracer) CountedUntil() time.Time { return t.counted }

// Open loads and attaches the programs, trying hook modes cheapest first. Nothing stays loaded
// when it fails.
func Open(opts Options) (*Tracer, error) {
	modes, err := candidates(opts.Hooks)
	if err != nil {
		return nil, err
	}
	// Needed only before 5.11 (memlock accounting); a no-op when the kernel uses memcg. Its
	// failure is not fatal by itself: without CAP_BPF it cannot even probe, and a real memlock
	// limit shows up as EPERM at load, which explain() covers.
	_ = rlimit.RemoveMemlock()
	var skipped []error
	for _, mode := range modes {
		t, err := open(mode, opts)
		if err != nil && usesCast(opts) && !outOfResources(err) {
			// The kfunc was found in the kernel's BTF, which does not promise that every
			// program type may call it: the probe-read variants load wherever the rest does.
			probed := opts
			probed.ProbedReads = true
			if tp, errp := open(mode, probed); errp == nil {
				skipped = append(skipped, fmt.Errorf("hooks %s, accept reads through bpf_rdonly_cast (using probe reads): %w", mode, err))
				t, err = tp, nil
			}
		}
		if err == nil {
			t.skipped = skipped
			return t, nil
		}
		if outOfResources(err) {
			// Not this kernel's limit but the collector's: another mode would load (it uses
			// fewer descriptors and less memory) and quietly lose what tp_btf keeps (found by
			// independent checks, for descriptors and for the memory cgroup). The error says
			// which limit to raise.
			return nil, err
		}
		skipped = append(skipped, fmt.Errorf("hooks %s: %w", mode, err))
	}
	return nil, errors.Join(skipped...)
}

func open(mode HookMode, opts Options) (t *Tracer, err error) {
	spec, err := bpf.LoadPodnet()
	if err != nil {
		return nil, err
	}
	for name, progs := range statePrograms {
		if name != mode {
			for _, p := range progs {
				delete(spec.Programs, p)
			}
		}
	}
	for name, progs := range errorPrograms {
		if name != mode {
			for _, p := range progs {
				delete(spec.Programs, p)
			}
		}
	}
	// hooks: syscall tracepoint → the program chosen for it. Programs not chosen (the other
	// accept variant; every syscall program when aggregating) are not even loaded.
	cast := usesCast(opts)
	hooks := map[string]string{}
	for _, h := range syscallHooks {
		use, drop := h.prog, h.cast
		if cast && h.cast != "" {
			use, drop = h.cast, h.prog
		}
		if opts.syscallHooks() {
			hooks[h.name] = use
		} else {
			delete(spec.Programs, use)
		}
		if drop != "" {
			delete(spec.Programs, drop)
		}
	}
	if !collectedProgram(mode, opts) {
		delete(spec.Programs, bpf.PodnetProgFailureCollectedTracepoint)
	}
	if !uringProgram(opts) {
		delete(spec.Programs, bpf.PodnetProgUringComplete)
	}
	_, dropProgress := progressProgram(opts)
	delete(spec.Programs, dropProgress)
	if opts.refuseCast {
		refuseCastPrograms(spec)
	}
	if p, ok := spec.Programs[bpf.PodnetProgFindListeners]; ok && opts.refuseIterators {
		p.Instructions = asm.Instructions{asm.Mov.Reg(asm.R0, asm.R5), asm.Return()} // R5 unset: refused
	}
	cpuRing, err := setRings(spec, opts)
	if err != nil {
		return nil, err
	}
	spec.Maps[bpf.PodnetMapConns].MaxEntries = opts.MaxTrackedConnections
	interval := spec.Maps[bpf.PodnetMapAggregates].InnerMap
	interval.MaxEntries = max(opts.MaxAggregates, 1) + 1 // + the overflow entry (aggregates.go)
	if err := spec.Variables[bpf.PodnetVarAggregateInKernel].Set(opts.AggregateInKernel); err != nil {
		return nil, err
	}
	if err := spec.Variables[bpf.PodnetVarSendEvents].Set(opts.sendsEvents()); err != nil {
		return nil, err
	}
	if err := spec.Variables[bpf.PodnetVarAggKeyDrops].Set(opts.KeyDrops); err != nil {
		return nil, err
	}
	if err := setConnectCalls(spec, opts); err != nil {
		return nil, err
	}
	if err := setSelection(spec, opts); err != nil {
		return nil, err
	}
	natErr := prepareNAT(spec, opts)
	marked := marksWanted(mode, opts)
	if err := prepareMarks(spec, marked, opts); err != nil {
		return nil, err
	}
	if err := setHandshakeBounds(spec); err != nil {
		return nil, err
	}

	coll, iterErr, err := loadCollection(spec)
	if err != nil && natErr == nil && withoutNAT(spec) {
		natErr = fmt.Errorf("loading the netfilter program (service_backends): %w", err)
		coll, iterErr, err = loadCollection(spec)
	}
	if err != nil {
		return nil, explain("loading BPF programs", sizeError(descriptorShortage(spec, err), opts))
	}
	t = &Tracer{
		coll: coll, mode: mode, castReads: cast, cgroupIDs: cgroupIDsReadable(), counters: coll.Maps[bpf.PodnetMapCounters],
		iterErr: iterErr, noLiveReads: opts.NoLiveReads, noListenerScan: opts.NoListenerScan, natErr: natErr,
	}
	opened := t // the returns below set t to nil; what they leave open is closed through this
	defer func() {
		if err != nil {
			_ = opened.Close()
		}
	}()
	if err = fillExclusions(coll, opts); err != nil {
		return nil, err
	}
	// Before attaching: a program finding the slot empty would count nothing.
	if t.aggregates, err = newIntervals(coll.Maps[bpf.PodnetMapAggregates], coll.Variables[bpf.PodnetVarAggSlot], interval); err != nil {
		return nil, explain("creating the in-kernel aggregation maps", sizeError(err, opts))
	}
	if marked {
		if t.marks, err = newMarks(coll); err != nil {
			return nil, err
		}
	}
	if t.iterErr == nil {
		if t.iters, t.iterErr = attachIterators(coll); t.iterErr != nil {
			t.iters.close()
			t.iters = nil
		}
	}

	if prog := coll.Programs[bpf.PodnetProgNatSeen]; prog != nil {
		links, err := attachNAT(prog, opts.NATNetns)
		t.natErr = err
		t.links = append(t.links, links...)
	}
	for _, p := range errorPrograms[mode] {
		l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[p]})
		if err != nil {
			return nil, explain("attaching "+p, err)
		}
		t.links = append(t.links, l)
	}
	t.counting = time.Now()
	for _, p := range statePrograms[mode] {
		l, err := attachState(mode, coll.Programs[p])
		if err != nil {
			return nil, explain("attaching inet_sock_set_state", err)
		}
		t.links = append(t.links, l)
	}
	if t.marks != nil && t.iters != nil { // without the reads, nothing would take the marks
		links, err := attachMarks(coll)
		if err != nil {
			return nil, err
		}
		t.links = append(t.links, links...)
	}
	for _, h := range syscallHooks {
		prog, ok := hooks[h.name]
		if !ok {
			continue
		}
		l, err := link.Tracepoint(h.group, h.name, coll.Programs[prog], nil)
		if err != nil {
			return nil, explain("attaching "+h.group+"/"+h.name, err)
		}
		t.links = append(t.links, l)
	}
	if collectedProgram(mode, opts) {
		l, err := link.Tracepoint("sock", "inet_sk_error_report", coll.Programs[bpf.PodnetProgFailureCollectedTracepoint], nil)
		if err != nil {
			return nil, explain("attaching sock/inet_sk_error_report", err)
		}
		t.links = append(t.links, l)
	}
	if uringProgram(opts) {
		l, err := link.Tracepoint("io_uring", "io_uring_complete", coll.Programs[bpf.PodnetProgUringComplete], nil)
		if err != nil {
			return nil, explain("attaching io_uring/io_uring_complete", err)
		}
		t.links = append(t.links, l)
	}
	if !opts.sendsEvents() {
		return t, nil // no events: no reader
	}
	if t.events, err = openReader(coll, spec, cpuRing); err != nil {
		return nil, explain("opening the ring buffer", err)
	}
	return t, nil
}

// Events is the reader of the programs' ring buffers; nil when no events are sent (aggregating
// in the kernel for metrics alone). Close unblocks a concurrent ReadInto, which then returns ringbuf.ErrClosed.
func (t *Tracer) Events() EventReader { return t.events }

// ProgramIDs are the kernel ids of the loaded programs (for `bpftool prog show id N`).
func (t *Tracer) ProgramIDs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, p := range t.coll.Programs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// MarkedReads says whether the live reads visit only the sockets that moved data since the
// last read (bpf/progress.h), rather than every tracked connection.
func (t *Tracer) MarkedReads() bool { return t.marks != nil }

// Mode is the hook mode that loaded.
func (t *Tracer) Mode() HookMode { return t.mode }

// CastReads says whether the accept hook reads sockets with plain loads (bpf_rdonly_cast)
// rather than probe reads.
func (t *Tracer) CastReads() bool { return t.castReads }

// Skipped says why cheaper modes were passed over (empty when the first one loaded).
func (t *Tracer) Skipped() []error { return t.skipped }

// CgroupIDs says whether sockets name their cgroup on this kernel (5.15+, or the older layout of
// 5.8-5.14 where CO-RE reads it). Without it, events carry the cgroup of the process that
// connected or accepted where there is one, and 0 otherwise: hostNetwork pods, told apart only by
// cgroup, cannot be attributed then.
func (t *Tracer) CgroupIDs() bool { return t.cgroupIDs }

// Close detaches every link, closes the reader and unloads programs and maps. It unblocks a
// concurrent ReadInto, which then returns ringbuf.ErrClosed.
func (t *Tracer) Close() error {
	var errs []error
	if t.events != nil {
		errs = append(errs, t.events.Close())
	}
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if t.iters != nil {
		t.iters.close()
	}
	if t.aggregates != nil {
		t.aggregates.close()
	}
	t.coll.Close()
	return errors.Join(errs...)
}

// loadCollection loads the programs; when the kernel refuses the iterators (bpf/progress.h),
// everything else is loaded without them and iterErr says why.
func loadCollection(spec *ebpf.CollectionSpec) (coll *ebpf.Collection, iterErr, err error) {
	coll, err = ebpf.NewCollection(spec)
	if err == nil {
		return coll, nil, nil
	}
	// Only a refusal of an iterator program, not for want of memory or descriptors: a map the
	// kernel could not create (ENOMEM in the collector's memory cgroup, whichever program
	// asked for it first) is not the iterators', and loading everything again while the first
	// attempt's maps are still being freed got the collector OOM-killed (an independent review).
	if !refusedIterator(err) || outOfResources(err) {
		return nil, nil, err
	}
	without := spec.Copy()
	for _, p := range iteratorPrograms {
		delete(without.Programs, p)
	}
	if len(without.Programs) == len(spec.Programs) {
		return nil, nil, err
	}
	// Without the iterators no listener scan runs, and it is what deletes closed listeners:
	// none is kept (found by an independent review: the map filled as a logs-only podnet's did).
	if errKeep := without.Variables[bpf.PodnetVarKeepListeners].Set(false); errKeep != nil {
		return nil, nil, errKeep
	}
	without.Maps[bpf.PodnetMapListeners].MaxEntries = 1
	coll, errWithout := ebpf.NewCollection(without)
	if errWithout != nil {
		return nil, nil, err
	}
	return coll, fmt.Errorf("the kernel refused the BPF iterators: %w", err), nil
}

// outOfResources says whether err is the collector's own limit: descriptors, or its memory
// cgroup's room for maps. Loading again, in another mode or with probe reads, would either
// quietly lose what this one keeps or push the cgroup past its limit (the OOM killer, not an
// error: found by an independent review, between ~290 and ~307 MB for a 1M-entry table).
func outOfResources(err error) bool {
	return outOfDescriptors(err) || errors.Is(err, unix.ENOMEM)
}

// refusedIterator says whether err is the load of one of iteratorPrograms failing.
func refusedIterator(err error) bool {
	for _, p := range iteratorPrograms {
		if strings.Contains(err.Error(), "program "+p+":") {
			return true
		}
	}
	return false
}
