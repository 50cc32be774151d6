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
// Closes are exact but for those the kernel ran while a thread of PID 1 was current: on the
// development VM no BPF program runs then, and tracefs counts them (hiddenCloses).
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
	hidden := watchHiddenCloses(t)

	var l load
	l.run(t, pod, 8, 4*time.Second)
	n := int(l.ok.Load())
	hiddenServer, hiddenClient := 0, 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		hiddenServer, hiddenClient = hidden.count(l.port)
		got.mu.Lock()
		all := got.kinds[serverEnd] >= n-hiddenServer && got.kinds[clientEnd] >= n-hiddenClient
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
	t.Logf("%d connections (%d failed); runs skipped by the kernel %v; of those, interesting state changes done by the second program %d; uncovered recursion misses %d; connects %d, accepts %d; closes %d/%d (client), %d/%d (server)",
		n, l.failed.Load(), skipped, after.RecursionCovered-before.RecursionCovered, after.RecursionMisses-before.RecursionMisses,
		got.kinds[connected], got.kinds[accepted], got.kinds[clientEnd], n, got.kinds[serverEnd], n)
	assert.Zero(t, after.RecursionMisses-before.RecursionMisses, "uncovered recursion misses")
	assert.Zero(t, after.ReserveFailed-before.ReserveFailed)
	assert.Equal(t, n+int(l.failed.Load()), got.kinds[connected], "every connect reported once")
	assert.Equal(t, n, got.kinds[accepted], "every accept reported once")
	hiddenServer, hiddenClient = hidden.count(l.port)
	if hiddenServer+hiddenClient > 0 {
		t.Logf("closes the kernel ran with a PID 1 thread current, hidden from BPF: server %d, client %d", hiddenServer, hiddenClient)
	}
	assert.Equal(t, n-hiddenClient, got.kinds[clientEnd], "client closes")
	assert.Equal(t, n-hiddenServer, got.kinds[serverEnd], "server closes")
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
