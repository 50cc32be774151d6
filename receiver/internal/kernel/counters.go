//go:build linux && (amd64 || arm64)

package kernel

import (
	"github.com/podnet/podnet/bpf"
)

// Counters are the kernel side's cumulative loss counts since load.
type Counters struct {
	// ReserveFailed: events not written because the ring buffer was full.
	ReserveFailed uint64
	// CloseUntracked: closes of connections podnet never saw open (opened before it loaded,
	// evicted from the bounded connection table, or established while the kernel skipped the
	// state program); not reported as events.
	CloseUntracked uint64
	// AggregateFull: in-kernel aggregation found no room for a new key.
	AggregateFull uint64
	// RecursionMisses: program runs the kernel skipped (the hook re-entered on a CPU) that no
	// other program did instead: events lost. With tp_btf hooks the state programs' skips are
	// not among them (bpf/recursion.h), nor the marks' (marks.beforeRead); with classic
	// tracepoints they are.
	RecursionMisses uint64
	// RecursionCovered: program runs the kernel skipped that podnet made up for, nothing lost:
	// state changes skipped in the first tp_btf state program that the second one did, and
	// skipped marks of sockets that moved data (marked reads), after which a live read walks
	// every connection. Shown so that the mechanisms' work can be seen.
	RecursionCovered uint64
	// Submitted: events the programs produced for the ring buffer, counted before the
	// reservation: Submitted == events read + ReserveFailed + events not read yet.
	Submitted uint64
	// CloseUnseen: connections whose close the kernel never showed podnet, found when their
	// socket's memory was reused for a new connection (the kernel runs no BPF program while
	// some tasks are current); their entry is dropped so the new connection is not reported
	// with its role and start.
	CloseUnseen uint64
	// NATSeen: new TCP connections the node's conntrack translated (Options.NATNetns);
	// BackendLookups: client connections to a destination some translation went to, looked up;
	// BackendFound: those found translated, whose events name their backend. Every other
	// client connection is not looked up.
	NATSeen, BackendLookups, BackendFound uint64
	// MarkFull: sockets that moved data and found the marked set full (marked reads): each
	// makes the next live read walk every tracked connection, as unmarked reads do.
	MarkFull uint64
	// ProgressVisited: open connections the live reads looked at.
	ProgressVisited uint64
	// SampledOut: connection ends that closed with their records left out by logs sampling.
	SampledOut uint64
	// ActiveUnmoved: closes folded into the overflow key whose opens were counted in their own
	// keys, that found no room to take the open out of that key (bpf/maps.h active_moved): the
	// key's open count stays one too high, the overflow series' one too low.
	ActiveUnmoved uint64
}

// Counters sums the per-CPU counters and the programs' recursion misses.
func (t *Tracer) Counters() (Counters, error) {
	var sums [bpf.PodnetCounterCOUNTER_MAX]uint64
	for i := range sums {
		var err error
		if sums[i], err = t.sumCounter(bpf.PodnetCounter(i)); err != nil {
			return Counters{}, err
		}
	}
	c := Counters{
		ReserveFailed:    sums[bpf.PodnetCounterCOUNTER_RESERVE_FAILED],
		CloseUntracked:   sums[bpf.PodnetCounterCOUNTER_CLOSE_UNTRACKED],
		AggregateFull:    sums[bpf.PodnetCounterCOUNTER_AGGREGATE_FULL],
		Submitted:        sums[bpf.PodnetCounterCOUNTER_SUBMITTED],
		CloseUnseen:      sums[bpf.PodnetCounterCOUNTER_CLOSE_UNSEEN],
		RecursionCovered: sums[bpf.PodnetCounterCOUNTER_RECURSION_COVERED],
		NATSeen:          sums[bpf.PodnetCounterCOUNTER_NAT_SEEN],
		BackendLookups:   sums[bpf.PodnetCounterCOUNTER_BACKEND_LOOKUPS],
		BackendFound:     sums[bpf.PodnetCounterCOUNTER_BACKEND_FOUND],
		MarkFull:         sums[bpf.PodnetCounterCOUNTER_MARK_FULL],
		ProgressVisited:  sums[bpf.PodnetCounterCOUNTER_PROGRESS_VISITED],
		SampledOut:       sums[bpf.PodnetCounterCOUNTER_SAMPLED_OUT],
		ActiveUnmoved:    sums[bpf.PodnetCounterCOUNTER_ACTIVE_UNMOVED],
	}
	for name, p := range t.coll.Programs {
		st, err := p.Stats()
		if err != nil {
			return c, err
		}
		switch {
		case markPrograms[name] != "":
			c.RecursionCovered += st.RecursionMisses // a mark: the next read walks every connection
		case !coveredPrograms[name]:
			c.RecursionMisses += st.RecursionMisses
		}
	}
	return c, nil
}

func (t *Tracer) sumCounter(idx bpf.PodnetCounter) (uint64, error) {
	var perCPU []uint64
	if err := t.counters.Lookup(uint32(idx), &perCPU); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
}
