package kernel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// At full load (the generator and the reader keep both CPUs busy) softirqs interrupt the state
// program while it runs in process context, and the kernel skips those runs; the second tp_btf
// program does them (bpf/recursion.h). No skipped state change may go unhandled, and every
// connection's connect and accept must be reported.
//
// Closes are compared within 0.1%, because of the machine, not podnet: on the development VM
// the kernel runs no BPF tracing program (tp_btf or classic tracepoint, ours or any other)
// while a thread of the sandbox's PID 1 (process_api, "tokio-rt-worker") is the current task,
// and counts no recursion miss for it; ftrace still records those events. A softirq that
// happens to run on top of such a thread (e.g. at a timer tick) therefore changes TCP states
// podnet never sees: about one connection in 10^5 at full load loses its FIN_WAIT1 ->
// FIN_WAIT2 -> CLOSE (server) or LAST_ACK -> CLOSE (client). Measured 2026-12-01: a raw and a
// classic tracepoint program on irq/softirq_entry counted 0 runs with tid 75 where tracefs
// recorded 86-110, and exactly tracefs's count for ksoftirqd/0.
func TestNoStateChangeLostToRecursionUnderLoad(t *testing.T) {
	netw := netnstest.NewNetwork(t, 64)
	pod := netw.AddPod()
	tr := openEvents(t, 1<<24)
	if tr.Mode() != HooksTPBTF {
		t.Skip("tp_btf does not load here: classic tracepoints cannot cover skipped runs")
	}
	before, skippedBefore := counters(t, tr), skipsByProgram(t, tr)
	stop := make(chan struct{})
	got := readContinuously(t, tr, pod.NetnsInode(), stop)

	var l load
	l.run(t, pod, 8, 4*time.Second)
	n := int(l.ok.Load())
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got.mu.Lock()
		all := got.kinds[serverEnd] >= n && got.kinds[clientEnd] >= n
		got.mu.Unlock()
		if all {
			break
		}
	}
	close(stop)
	<-got.done

	after := counters(t, tr)
	skipped := map[string]uint64{}
	for name, s := range skipsByProgram(t, tr) {
		if d := s - skippedBefore[name]; d > 0 {
			skipped[name] = d
		}
	}
	t.Logf("%d connections (%d failed); runs skipped by the kernel %v; of those, interesting state changes done by the second program %d; uncovered recursion misses %d; closes %d/%d (client), %d/%d (server)",
		n, l.failed.Load(), skipped, after.RecursionCovered-before.RecursionCovered, after.RecursionMisses-before.RecursionMisses,
		got.kinds[clientEnd], n, got.kinds[serverEnd], n)
	assert.Zero(t, after.RecursionMisses-before.RecursionMisses, "uncovered recursion misses")
	assert.Zero(t, after.ReserveFailed-before.ReserveFailed)
	assert.Equal(t, n+int(l.failed.Load()), got.kinds[connected])
	assert.Equal(t, n, got.kinds[accepted])
	assert.InDelta(t, n, got.kinds[clientEnd], float64(n)/1000)
	assert.InDelta(t, n, got.kinds[serverEnd], float64(n)/1000)
	assert.LessOrEqual(t, got.kinds[clientEnd], n, "no close twice")
	assert.LessOrEqual(t, got.kinds[serverEnd], n, "no close twice")
}

// skipsByProgram are the kernel's recursion-miss counts of each loaded program.
func skipsByProgram(t *testing.T, tr *Tracer) map[string]uint64 {
	m := map[string]uint64{}
	for name, p := range tr.coll.Programs {
		st, err := p.Stats()
		require.NoError(t, err)
		m[name] = st.RecursionMisses
	}
	return m
}
