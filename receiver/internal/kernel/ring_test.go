package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
)

// openEvents loads podnet sending events (auto hooks), closed at test end.
func openEvents(t *testing.T, ring uint32) *Tracer {
	t.Helper()
	return openEventsWith(t, HooksAuto, ring)
}

func openEventsWith(t *testing.T, hooks HookMode, ring uint32) *Tracer {
	t.Helper()
	tr, err := Open(Options{Hooks: hooks, RingBufferSize: ring, MaxTrackedConnections: 65536, MaxAggregates: 16})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// openBothSinks loads podnet with events and in-kernel aggregation (hooks: which programs),
// closed at test end.
func openBothSinks(t *testing.T, hooks HookMode) *Tracer {
	t.Helper()
	tr, err := Open(Options{
		Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, MaxAggregates: 1024,
		AggregateInKernel: true, Events: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// readAll reads every record in the ring without blocking; keep (nil: all) selects the
// events returned, every record read is counted in n.
func readAll(t *testing.T, tr *Tracer, keep func(*bpf.PodnetEvent) bool) (events []bpf.PodnetEvent, n int) {
	t.Helper()
	var rec ringbuf.Record
	tr.Events().SetDeadline(time.Now())
	for {
		err := tr.Events().ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return events, n
		}
		require.NoError(t, err)
		n++
		var e bpf.PodnetEvent
		require.NoError(t, binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &e))
		if keep == nil || keep(&e) {
			events = append(events, e)
		}
	}
}

// inNetns keeps the events of one network namespace: other processes on the machine connect too.
func inNetns(ino uint32) func(*bpf.PodnetEvent) bool {
	return func(e *bpf.PodnetEvent) bool { return e.NetnsIno == ino }
}

func counters(t *testing.T, tr *Tracer) Counters {
	t.Helper()
	c, err := tr.Counters()
	require.NoError(t, err)
	return c
}
