//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/podnet/podnet/receiver/internal/event"
)

// maxBatch caps one plog/pmetric batch so a reader that never catches up still delivers, and
// bounds how long one delivery (converting, then the pipeline's consume) holds a CPU: larger
// batches were bursts that the workloads sharing the CPU queued behind (their p99 under
// nginx + wrk), smaller ones cost more CPU for no better p99 (README, Performance, "Batch size").
const maxBatch = 1024

// recordStride is the ring space one record takes: an 8-byte header, then the sample padded
// to 8 bytes. It bounds the count-only drain to one ring's worth of records.
const recordStride = 8 + (event.RecordSize+7)&^7

// ringReader only reads: it drains the ring every poll interval (or when the kernel wakes it
// at a backlog mark), decodes in place, attributes each batch once and hands it to the
// pipeline goroutine (excluded connections never reach the ring: the kernel decides; exclude
// here is for the connections /proc found at start). It never waits on a consumer while the
// hand-off has room, so a slow pipeline does not leave the ring to fill.
type ringReader struct {
	ring    ringSource
	clock   *event.Clock
	exclude exclusions // for /proc finds only
	enrich  *enricher
	out     *handoff
	// metrics, in events mode, counts every batch here, before the logs' hand-off: a logs
	// pipeline that blocks or refuses, or Shutdown's deadline for the logs, never takes a
	// connection out of the metrics (found by an independent review: 2,048 of 3,072
	// connections missing from the final metrics behind a blocked logs consumer).
	metrics *sharedMetrics
	loss    *lossReporter
	poll    time.Duration
	// found, if set, runs the start-up scan; run sends what it found before reading the ring.
	found    func(*event.Clock) []event.Event
	stopping atomic.Bool
	// failed is called once if the ring cannot be read any more.
	failed func(error)
}

// run reads until stop has been called and the ring is empty, then closes the hand-off.
// ctx ends when Shutdown's deadline passes: what is still unread is then counted, not
// delivered.
func (l *ringReader) run(ctx context.Context) {
	defer close(l.out.ready)
	var rec ringbuf.Record
	if l.found != nil {
		l.clock.Sync()
		if !l.sendFound(ctx, l.found(l.clock)) {
			l.discard(&rec)
			return
		}
	}
	for {
		// Read before filling: a stop requested before the fill means the fill's empty ring
		// came after the stop, so every record written before it has been read.
		stopping := l.stopping.Load()
		b, ok := l.out.get(ctx)
		if !ok {
			l.discard(&rec)
			return
		}
		deadline := time.Now().Add(l.poll)
		if stopping {
			deadline = time.Now() // read what is there, do not wait for more
		}
		l.ring.SetDeadline(deadline)
		empty, err := l.fill(&rec, b)
		if len(b.events) == 0 {
			l.out.release(b)
		} else {
			l.enrich.enrich(b.events)
			l.count(b.events)
			if !l.out.send(ctx, b) {
				l.discard(&rec)
				return
			}
		}
		if err != nil {
			l.failed(err)
			return
		}
		if stopping && empty {
			return
		}
	}
}

// sendFound hands the connections the start-up scan found to the pipeline in batches, the
// excluded ones left out, attributed like ring events; false once ctx ends.
func (l *ringReader) sendFound(ctx context.Context, found []event.Event) bool {
	for len(found) > 0 {
		b, ok := l.out.get(ctx)
		if !ok {
			return false
		}
		n := min(len(found), maxBatch)
		for i := range found[:n] {
			if !l.exclude.excluded(found[i].Peer.Addr(), found[i].ServerPort()) {
				b.events = append(b.events, enrichedEvent{Event: found[i]})
			}
		}
		found = found[n:]
		if len(b.events) == 0 {
			l.out.release(b)
			continue
		}
		l.enrich.enrich(b.events)
		l.count(b.events)
		if !l.out.send(ctx, b) {
			return false
		}
	}
	return true
}

// stop asks run to drain the ring until it is empty and return. Shutdown has detached the
// programs by then, so empty means everything they wrote was read.
func (l *ringReader) stop() error {
	l.stopping.Store(true)
	return l.ring.Flush() // wakes a reader waiting for its poll deadline
}

// fill reads into b until it is full, or the ring is empty once the poll deadline has passed
// (or after a Flush): empty reports that. It returns the reader's error otherwise.
func (l *ringReader) fill(rec *ringbuf.Record, b *batch) (empty bool, err error) {
	var read, malformed int64
	defer func() {
		l.loss.received(read)
		l.loss.decodeErrors(malformed)
	}()
	l.clock.Sync()
	for len(b.events) < maxBatch {
		err := l.ring.ReadInto(rec)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ringbuf.ErrFlushed) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		read++
		b.events = b.events[:len(b.events)+1]
		e := &b.events[len(b.events)-1]
		if err := event.Decode(rec.RawSample, l.clock, &e.Event); err != nil { // exclusions: decided in the kernel
			b.events = b.events[:len(b.events)-1]
			malformed++
		}
	}
	return false, nil
}

// count adds events to the metrics counted from events (events mode); nothing otherwise.
func (l *ringReader) count(events []enrichedEvent) {
	if l.metrics != nil {
		l.loss.seriesDropped(l.metrics.add(events))
	}
}

// discard counts what is left in the ring as received and dropped for the logs: after
// Shutdown's deadline for the logs nothing more can be delivered to them, but every record
// written before the programs detach is accounted for. Without metrics from events it is not
// decoded. At most one ring's worth, so it ends under load too.
func (l *ringReader) discard(rec *ringbuf.Record) {
	l.ring.SetDeadline(time.Now())
	if l.metrics != nil {
		l.discardCounted(rec)
		return
	}
	limit := l.ring.BufferSize() / recordStride
	n := 0
	for n < limit && l.ring.ReadInto(rec) == nil {
		n++
	}
	l.loss.received(int64(n))
	l.loss.dropped(int64(n))
}

// discardCounted is discard in events mode: what is left is read as fill reads it and counted
// in the metrics, which are emitted after, and dropped for the logs.
func (l *ringReader) discardCounted(rec *ringbuf.Record) {
	b := &batch{events: make([]enrichedEvent, 0, maxBatch)}
	for range l.ring.BufferSize()/recordStride/maxBatch + 1 {
		b.events = b.events[:0]
		empty, err := l.fill(rec, b)
		l.enrich.enrich(b.events)
		l.count(b.events)
		l.loss.dropped(l.out.records(b.events))
		if empty || err != nil {
			return
		}
	}
}
