package kernel

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// Data a netfilter rule in the sender's own namespace drops before it leaves is sent again as
// new data, not as a retransmission, and the kernel's bytes_sent counts every attempt: the
// bytes sent are what the peer acknowledged, counted once (found by an independent check: 1800
// for 300 sent). Both ends' close records, both hook modes, and the in-kernel aggregates.
func TestBytesSentDroppedLocallyCountOnce(t *testing.T) {
	for i, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		t.Run(string(hooks), func(t *testing.T) { testBytesSentDroppedLocally(t, hooks, byte(236+i)) })
	}
}

func testBytesSentDroppedLocally(t *testing.T, hooks HookMode, subnet byte) {
	netw := netnstest.NewNetwork(t, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{Hooks: hooks, RingBufferSize: 1 << 22, MaxTrackedConnections: 4096, Events: true,
		AggregateInKernel: true, MaxAggregates: 1024})
	require.NoError(t, err)
	defer tr.Close()

	clients, servers := connectPods(t, clientPod, serverPod, 7236, 1)
	client, server := clients[0], servers[0]
	// The client's data packets are dropped on their way out for a while: the kernel sends
	// them again and again, counting each attempt in bytes_sent.
	clientPod.Exec("nft", "add table inet podnet_out")
	clientPod.Exec("nft", "add chain inet podnet_out out { type filter hook output priority 0 ; policy accept ; }")
	clientPod.Exec("nft", "add rule inet podnet_out out tcp dport 7236 tcp flags & (syn | fin) == 0 ip length > 52 drop")
	const payload = 300
	_, err = client.Write(make([]byte, payload))
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // several attempts, each dropped
	clientPod.Exec("nft", "delete table inet podnet_out")
	_, err = io.ReadFull(server, make([]byte, payload))
	require.NoError(t, err)
	require.NoError(t, client.Close())
	readEOF(t, server)
	require.NoError(t, server.Close())

	closes := collect(t, tr, clientPod, 2) // its connect and close
	var sent []uint64
	for _, e := range closes {
		if e.Type == uint8(bpf.PodnetEventTypeEVENT_CLOSE) {
			sent = append(sent, e.BytesSent)
		}
	}
	assert.Equal(t, []uint64{payload}, sent, "the client's close: the payload once")

	totals := roleTotals{}
	drainInto(t, tr, map[uint32]roleTotals{clientPod.NetnsInode(): totals})
	require.NotNil(t, totals[uint8(bpf.PodnetRoleROLE_CLIENT)])
	assert.Equal(t, uint64(payload), totals[uint8(bpf.PodnetRoleROLE_CLIENT)].BytesSent, "the client's aggregate: the payload once")
}
