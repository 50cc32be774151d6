//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/podnet/podnet/bpf"
)

// kernelSide serialises use of the kernel's maps between the emitter and Shutdown, which
// closes them. After close nothing touches them, even an emitter that a blocked consumer kept
// running past Shutdown's deadline.
type kernelSide struct {
	mu     sync.Mutex
	src    kernelSource
	closed bool
	loss   *lossReporter
	warn   *warnLimiter
	// detachedAt is when the programs stopped counting (detach): nothing after it is in any
	// metric, so no point is stamped later (countedUntil).
	detachedAt time.Time
}

// readCounters exports the deltas of the kernel's loss counters.
func (k *kernelSide) readCounters() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		k.readCountersLocked()
	}
}

func (k *kernelSide) readCountersLocked() {
	c, err := k.src.Counters()
	if err != nil {
		k.warn.warn("podnet: cannot read kernel loss counters", err)
		return
	}
	if c.ReserveFailed > k.loss.last.ReserveFailed {
		// Said while it happens, as the pipeline's refusals are, not only in the Shutdown
		// summary that an OOM kill never writes (found by an independent check: 75% of the
		// events lost under a CPU quota, not a line until Shutdown).
		k.warn.warn("podnet: events lost: the ring buffer was full (otelcol_podnet_events_lost); the reader fell behind the kernel: give the collector more CPU, raise ring_buffer_size, or keep fewer events (logs.sampling, exclude, disabled event types); metrics from in-kernel aggregation are not affected",
			fmt.Errorf("%d events lost since the last reading, %d since start", c.ReserveFailed-k.loss.last.ReserveFailed, c.ReserveFailed))
	}
	if c.ActiveUnmoved > k.loss.last.ActiveUnmoved {
		// Rare (the kernel out of memory, or more keys moved in one interval than connections
		// are tracked) and without a counter of its own: a wrong gauge, not a lost event.
		k.warn.warn("podnet: some podnet.tcp.connections.active series stay too high (and the overflow series too low) by connections whose close was folded into the overflow series", fmt.Errorf("%d closes since start found no room to leave their own series", c.ActiveUnmoved))
	}
	k.loss.kernel(context.Background(), c)
}

// errKernelClosed is a drain's answer after close: nothing read, nothing to warn about.
var errKernelClosed = errors.New("podnet: the kernel side is closed")

func (k *kernelSide) drainAggregates(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errKernelClosed
	}
	return k.src.DrainAggregates(fn)
}

// listenDrops runs the listener scan, unless the kernel side is closed.
func (k *kernelSide) listenDrops() ([]bpf.PodnetListenDrops, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errKernelClosed
	}
	return listenScan(k.src)
}

// listenScan runs the listener scan: every listening socket with its drops.
func listenScan(src kernelSource) ([]bpf.PodnetListenDrops, error) {
	scan := []bpf.PodnetListenDrops{}
	err := src.ListenDrops(func(r *bpf.PodnetListenDrops) { scan = append(scan, *r) })
	return scan, err
}

// detach stops the programs: from then on the ring and the aggregates only hold what they
// already wrote, so draining them ends, and ends complete, however busy the node is.
func (k *kernelSide) detach() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	if err := k.src.Detach(); err != nil {
		return err
	}
	// When the programs stopped counting, Detach's first step: stamped when Detach returned,
	// ~40 ms later (its links' closes and its wait), the last points lacked the connections
	// that ended in between (found by an independent check: up to 46 ms of them, never counted).
	k.detachedAt = k.src.CountedUntil()
	return nil
}

// countedUntil is when the programs stopped counting; ok false while they count.
func (k *kernelSide) countedUntil() (until time.Time, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.detachedAt, !k.detachedAt.IsZero()
}

// close reads the counters a last time (the ring is drained by now, so they cover every
// event read), then detaches and unloads the programs.
func (k *kernelSide) close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.readCountersLocked()
	k.closed = true
	return k.src.Close()
}
