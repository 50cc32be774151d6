package kernel

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A start-up scan whose read fails after its first buffer (the kernel's EAGAIN after a million
// objects without output, or any read error) hands on every record it read before the error:
// the kernel tracks those connections from then on, and a second scan goes on with the rest, so
// every close of a found connection has its found record. It used to hand on none, and no scan
// after reported them (found by an independent review: 204 of 2,000 ends without their record).
func TestStartUpScanKeepsWhatItReadBeforeAnError(t *testing.T) {
	netw := netnstest.NewNetwork(t, 27)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	const n = 1000
	clients, servers := connectPods(t, clientPod, serverPod, 7027, n)
	tr := openEvents(t, 1<<22)
	ours := func(e *bpf.PodnetEvent) bool {
		return e.NetnsIno == clientPod.NetnsInode() || e.NetnsIno == serverPod.NetnsInode()
	}
	ring := collectRingWhere(t, tr, ours)

	tr.readScan = func(l *link.Iter) ([]byte, error) { // the first buffer, then an error
		rd, err := l.Open()
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		buf := make([]byte, 1<<16)
		k, err := rd.Read(buf)
		if err != nil && !errors.Is(err, io.EOF) {
			return buf[:k], err
		}
		return buf[:k], fmt.Errorf("after %d bytes: %w", k, unix.EAGAIN)
	}
	first := 0
	_, err := tr.FindExisting(func(e *bpf.PodnetEvent) {
		if ours(e) {
			first++
		}
	})
	require.ErrorIs(t, err, unix.EAGAIN, "the scenario: the read failed")
	tr.readScan = nil
	second := 0
	_, err = tr.FindExisting(func(e *bpf.PodnetEvent) {
		if ours(e) {
			second++
		}
	})
	require.NoError(t, err)

	for i := range clients {
		_ = clients[i].Close()
		_ = servers[i].Close()
	}
	closesFound := 0
	require.Eventually(t, func() bool {
		for _, e := range ring.take() {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) && e.Flags&uint8(bpf.PodnetEventFlagEVENT_FLAG_FOUND) != 0 {
				closesFound++
			}
		}
		return closesFound >= 2*n
	}, 10*time.Second, 50*time.Millisecond, "every end's close, of a found connection")
	t.Logf("found by the failed scan %d, by the second %d; closes of found connections %d", first, second, closesFound)
	assert.Positive(t, first, "the records read before the error are handed on")
	assert.Equal(t, closesFound, first+second, "every found connection's close has its found record")
}
