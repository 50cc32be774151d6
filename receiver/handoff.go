//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"sync"
	"time"
)

// handoffDepth is how many filled batches may wait between the reader and the pipeline
// goroutine. The ring is the large buffer (sized for a poll interval at peak); these few
// batches only let the reader keep draining it while a ConsumeLogs or a GC pause holds the
// pipeline goroutine, and they bound user-space memory to handoffDepth+2 batches.
const handoffDepth = 4

// batch is one hand-off: up to maxBatch attributed events in kernel order, and when the reader
// handed them on (their records' ObservedTimestamp: when podnet read them, not when the
// pipeline, maybe behind a slow consumer, got to them).
type batch struct {
	events []enrichedEvent
	read   time.Time
}

// handoff moves batches from the reader to the pipeline goroutine through a fixed set of
// buffers: the reader takes a free one, fills it and sends it; the pipeline returns it when
// done. Nothing is allocated per batch and nothing queues beyond the buffers.
//
// It also accounts for every record sent (an event the logs keep): each is settled exactly once, by the pipeline
// (delivered, or refused and counted dropped) or, when Shutdown's deadline passes first, by
// abandon (counted dropped).
type handoff struct {
	free  chan *batch
	ready chan *batch
	loss  *lossReporter
	// records is how many records the logs pipeline would make of a batch's events (0 without
	// one): what is dropped is counted in records, as a refusal counts them.
	records func([]enrichedEvent) int64

	mu        sync.Mutex
	pending   int64 // records (of the events sent) not yet settled
	abandoned bool
}

func newHandoff(loss *lossReporter) *handoff {
	h := &handoff{
		loss:    loss,
		records: func(events []enrichedEvent) int64 { return int64(len(events)) },
		free:    make(chan *batch, handoffDepth+2),
		ready:   make(chan *batch, handoffDepth),
	}
	for range handoffDepth + 2 {
		h.free <- &batch{events: make([]enrichedEvent, 0, maxBatch)}
	}
	return h
}

// get returns an empty batch, waiting while every batch is in flight; false once ctx ends.
func (h *handoff) get(ctx context.Context) (*batch, bool) {
	select {
	case b := <-h.free:
		return b, true
	case <-ctx.Done():
		return nil, false
	}
}

// release returns a batch for reuse. It never blocks: free holds every batch there is.
func (h *handoff) release(b *batch) {
	b.events = b.events[:0]
	h.free <- b
}

// send queues a filled batch for the pipeline. When ctx ends first, its records are counted
// dropped and it returns false.
func (h *handoff) send(ctx context.Context, b *batch) bool {
	n := h.records(b.events)
	b.read = time.Now()
	h.mu.Lock()
	h.pending += n // before the batch is visible, so abandon always sees it
	h.mu.Unlock()
	select {
	case h.ready <- b:
		return true
	case <-ctx.Done():
	}
	h.settle(n, n)
	h.release(b)
	return false
}

// settle marks the n events of one batch as done, dropped of them not delivered. Once
// abandon has counted them it counts nothing again.
func (h *handoff) settle(n, dropped int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.abandoned {
		return
	}
	h.pending -= n
	h.loss.dropped(dropped)
}

// abandon counts every event not yet settled as dropped; later settles count nothing.
// Shutdown calls it when its deadline passes with the pipeline still inside a consumer.
func (h *handoff) abandon() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.abandoned = true
	h.loss.dropped(h.pending)
	h.pending = 0
}

func (h *handoff) isAbandoned() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.abandoned
}
