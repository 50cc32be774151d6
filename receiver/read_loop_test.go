package receiver

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/metadatatest"
	"github.com/podnet/podnet/receiver/internal/event"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// fakeSource plays recorded ring-buffer records, then reports deadlines until closed: the
// read loop without a kernel.
type fakeSource struct {
	mu           sync.Mutex
	records      [][]byte
	lost         uint64
	counterReads int
	closed       chan struct{}
}

func (f *fakeSource) SetDeadline(time.Time) {}

func (f *fakeSource) ReadInto(rec *ringbuf.Record) error {
	f.mu.Lock()
	if len(f.records) > 0 {
		rec.RawSample = append(rec.RawSample[:0], f.records[0]...)
		f.records = f.records[1:]
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	select {
	case <-f.closed:
		return ringbuf.ErrFlushed
	case <-time.After(5 * time.Millisecond):
		return os.ErrDeadlineExceeded
	}
}

func (f *fakeSource) Flush() error { close(f.closed); return nil }

func (f *fakeSource) Counters() (kernel.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counterReads++
	return kernel.Counters{ReserveFailed: f.lost}, nil
}

func (f *fakeSource) DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue)) error {
	return errors.New("not aggregating")
}

func (f *fakeSource) Close() error { return nil }

func record(k bpf.PodnetEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&k)), event.RecordSize)...)
}

// Corrupt and truncated records are counted as decode errors and dropped; the good ones around
// them are delivered; kernel loss is exported. Nothing panics.
func TestReadLoopCountsMalformedRecords(t *testing.T) {
	good := bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 80}
	badType := good
	badType.Type = 42
	badFamily := good
	badFamily.Family = 7
	src := &fakeSource{closed: make(chan struct{}), lost: 3, records: [][]byte{
		record(good), record(badType), record(good)[:10], {}, record(badFamily), record(good),
	}}

	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	cfg := NewDefaultConfig()
	logs := new(consumertest.LogsSink)
	r := newReceiver(cfg, metadatatest.NewSettings(tt))
	r.logs = logs
	r.open = func(kernel.Options) (source, error) { return src, nil }
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	assert.Equal(t, int64(4), counterSum(t, tt, "otelcol_podnet_events_decode_errors"))
	assert.Equal(t, int64(2), counterSum(t, tt, "otelcol_podnet_events_received"))
	assert.Equal(t, int64(3), counterSum(t, tt, "otelcol_podnet_events_lost"))
}

// The kernel's counters cost syscalls: a backlog drained in many batches reads them once per
// poll interval, not once per batch, and Shutdown still reads them a last time.
func TestKernelCountersAreReadOncePerInterval(t *testing.T) {
	good := record(bpf.PodnetEvent{Type: uint8(event.Connect), Role: uint8(event.Client), Family: 2, PeerPort: 80})
	src := &fakeSource{closed: make(chan struct{})}
	for range 20 * maxBatch {
		src.records = append(src.records, good)
	}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	cfg := NewDefaultConfig()
	cfg.PollInterval = time.Hour
	logs := new(consumertest.LogsSink)
	r := newReceiver(cfg, metadatatest.NewSettings(tt))
	r.logs = logs
	r.open = func(kernel.Options) (source, error) { return src, nil }
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 20*maxBatch }, 10*time.Second, 5*time.Millisecond)
	src.mu.Lock()
	reads := src.counterReads
	src.lost = 7 // after the last regular read: only the final one at Shutdown can see it
	src.mu.Unlock()
	require.NoError(t, r.Shutdown(context.Background()))

	assert.Equal(t, 1, reads, "20 batches within one poll interval")
	assert.Equal(t, int64(7), counterSum(t, tt, "otelcol_podnet_events_lost"))
}
