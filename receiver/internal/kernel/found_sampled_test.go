package kernel

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// Connections found at start are all logged whatever the logs sampling, so their records and
// their closes say 1 in 1 (the closes said N: weighting by it counted each N times, found by
// an independent check); with process attributes off they name no process either (the scan's
// task named one).
func TestFoundConnectionsWeighOneAndFollowProcessAttributes(t *testing.T) {
	netw := netnstest.NewNetwork(t, 241)
	pod := netw.AddPod()
	for i, process := range []bool{true, false} {
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(7241+i))
		clients, servers := connectPodsAt(t, pod, pod, addr, 8) // before podnet loads
		tr, err := Open(Options{
			Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 1024,
			AggregateInKernel: true, Events: true, SampleOneIn: 5, NoProcessContext: !process,
		})
		require.NoError(t, err)
		ring := collectRing(t, tr, pod.NetnsInode())
		var found []bpf.PodnetEvent
		_, err = tr.FindExisting(func(e *bpf.PodnetEvent) {
			if e.NetnsIno == pod.NetnsInode() && (e.LocalPort == addr.Port() || e.PeerPort == addr.Port()) {
				found = append(found, *e)
			}
		})
		require.NoError(t, err)
		require.Len(t, found, 16, "both ends of the 8 connections found, none sampled out")
		for _, c := range append(clients, servers...) {
			require.NoError(t, c.Close())
		}
		closes := 0
		require.Eventually(t, func() bool {
			for _, e := range ring.take() {
				if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) && (e.LocalPort == addr.Port() || e.PeerPort == addr.Port()) {
					closes++
					found = append(found, e)
				}
			}
			return closes == 16
		}, 5*time.Second, 10*time.Millisecond, "every found connection's close logged")
		for _, e := range found {
			assert.Equal(t, uint32(1), e.SampleOneIn, "type %d: found connections all kept, each weighs 1", e.Type)
			if process {
				assert.Equal(t, uint32(os.Getpid()), e.Pid, "type %d: the process holding it", e.Type)
			} else {
				assert.Zero(t, e.Pid, "type %d: process attributes off", e.Type)
				assert.Zero(t, e.Comm[0], "type %d: process attributes off", e.Type)
			}
		}
		require.NoError(t, tr.Close())
	}
}
