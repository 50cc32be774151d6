package podnetreceiver

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/internal/metadatatest"
	"github.com/podnet/podnet/receiver/internal/dnsnames"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// fakeRing plays queued records the way *ringbuf.Reader does: ReadInto returns what is
// queued, then waits for more, a Flush (ErrFlushed) or the deadline (ErrDeadlineExceeded).
// It needs no kernel and no root.
type fakeRing struct {
	mu       sync.Mutex
	records  [][]byte
	deadline time.Time
	flushed  bool
	wake     chan struct{}
	onFlush  func() // if set, called by Flush (Shutdown's stop of the reader)
}

func newFakeRing(records ...[]byte) *fakeRing {
	return &fakeRing{records: records, wake: make(chan struct{}, 1)}
}

func (f *fakeRing) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records)
}

func (f *fakeRing) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeRing) SetDeadline(t time.Time) {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	f.signal()
}

func (f *fakeRing) ReadInto(rec *ringbuf.Record) error {
	for {
		f.mu.Lock()
		if len(f.records) > 0 {
			rec.RawSample = append(rec.RawSample[:0], f.records[0]...)
			f.records = f.records[1:]
			f.mu.Unlock()
			return nil
		}
		if f.flushed {
			f.flushed = false
			f.mu.Unlock()
			return ringbuf.ErrFlushed
		}
		wait := time.Until(f.deadline)
		f.mu.Unlock()
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		timer := time.NewTimer(wait)
		select {
		case <-f.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (f *fakeRing) Flush() error {
	if f.onFlush != nil {
		f.onFlush()
	}
	f.mu.Lock()
	f.flushed = true
	f.mu.Unlock()
	f.signal()
	return nil
}

func (*fakeRing) BufferSize() int { return 16 << 20 }

// fakeKernel is the kernel's counters and aggregates role.
type fakeKernel struct {
	mu           sync.Mutex
	counters     kernel.Counters
	counterReads int
	aggregates   map[bpf.PodnetAggKey]bpf.PodnetAggValue
	drainErr     error             // what DrainAggregates returns after handing out the aggregates
	found        []bpf.PodnetEvent // what the start-up scan finds
	scans        int
	iterErr      error // IteratorsUnavailable
	detached     bool
	detachedAt   time.Time // as the Tracer's cut
	closed       bool
}

func (f *fakeKernel) Counters() (kernel.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return kernel.Counters{}, errors.New("counters read after Close")
	}
	f.counterReads++
	return f.counters, nil
}

func (f *fakeKernel) counterReadCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counterReads
}

func (*fakeKernel) IntervalEnded() time.Time { return time.Time{} }

func (f *fakeKernel) DrainAggregates(fn func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("aggregates drained after Close")
	}
	for k, v := range f.aggregates {
		fn(&k, &v)
	}
	clear(f.aggregates)
	return f.drainErr
}

func (f *fakeKernel) FindExisting(fn func(*bpf.PodnetEvent)) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errors.New("scanned after Close")
	}
	f.scans++
	for i := range f.found {
		fn(&f.found[i])
	}
	return len(f.found), nil
}

func (f *fakeKernel) IteratorsUnavailable() error { return f.iterErr }

func (f *fakeKernel) CountingSince() time.Time { return time.Time{} }
func (f *fakeKernel) CountedUntil() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detachedAt
}

func (f *fakeKernel) scanCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scans
}

func (f *fakeKernel) Detach() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("detached after Close")
	}
	f.detached = true
	f.detachedAt = time.Now()
	return nil
}

func (f *fakeKernel) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeKernel) isDetached() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detached
}

func (f *fakeKernel) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// fakeReceiver is a receiver on fakes: no kernel, no /proc, no root.
type fakeReceiver struct {
	*podnetReceiver
	ring   *fakeRing // nil: in-kernel aggregation
	kernel *fakeKernel
	tt     *componenttest.Telemetry
}

func newFakeReceiver(t *testing.T, cfg *Config, ring *fakeRing, logs consumer.Logs, metrics consumer.Metrics) *fakeReceiver {
	t.Helper()
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	f := &fakeReceiver{podnetReceiver: newReceiver(cfg, metadatatest.NewSettings(tt)), ring: ring, kernel: &fakeKernel{}, tt: tt}
	f.logs, f.metrics = logs, metrics
	f.open = func(kernel.Options) (source, error) {
		s := source{kernel: f.kernel}
		if ring != nil {
			s.ring = ring
		}
		return s, nil
	}
	f.startAttribution = func(component.Host, *metadata.TelemetryBuilder) (startedAttribution, error) {
		return startedAttribution{attr: fixedPeers{}, stop: func() {}}, nil
	}
	f.openNames = func(dnsnames.Options) (dnsSource, error) { return nil, errors.New("fake receiver: no DNS names") }
	return f
}

func (f *fakeReceiver) start(t *testing.T) {
	t.Helper()
	require.NoError(t, f.Start(context.Background(), componenttest.NewNopHost()))
}

// requireStopped fails unless every goroutine Start started has ended.
func (f *fakeReceiver) requireStopped(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { f.goroutines.Wait(); close(done) }()
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}, 5*time.Second, time.Millisecond, "goroutines still running after Shutdown")
}

// sum is the total of one of the receiver's counters (0 when never incremented).
func (f *fakeReceiver) sum(t *testing.T, name string) int64 {
	t.Helper()
	return telemetrySum(t, f.tt, name)
}

func record(k bpf.PodnetEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&k)), event.RecordSize)...)
}

// connects is n well-formed connect records.
func connects(n int) [][]byte {
	good := record(bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 80})
	out := make([][]byte, n)
	for i := range out {
		out[i] = good
	}
	return out
}
