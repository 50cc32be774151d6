package kernel

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// A connection found at Start whose send queue still holds data (queued before podnet
// started) is never marked: the rest of its data goes out with no send call, so marked reads
// count none of it while it stays open (found by an independent check).
func TestFoundConnectionWithDataInFlightCountsWhileOpen(t *testing.T) {
	netw := netnstest.NewNetwork(t, 89)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	client, server := slowReaderPair(t, clientPod, serverPod, netip.AddrPortFrom(serverPod.IPv4, 7089))
	const payload = 1 << 20
	_, err := client.Write(make([]byte, payload)) // queued whole, before podnet starts
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)

	tr := openMarked(t)
	cns, sns := clientPod.NetnsInode(), serverPod.NetnsInode()
	var foundSent uint64
	for _, e := range found(t, tr, cns, sns) {
		if e.Role == roleClient {
			foundSent = e.BytesSent
		}
	}
	t.Logf("client's bytes sent when found: %d of %d", foundSent, payload)
	require.Less(t, foundSent, uint64(payload))
	clientTotals, serverTotals := roleTotals{}, roleTotals{}
	watched := map[uint32]roleTotals{cns: clientTotals, sns: serverTotals}
	drainInto(t, tr, watched)

	_, err = io.ReadFull(server, make([]byte, payload)) // the rest goes out as the server reads
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 3; i++ {
		drainInto(t, tr, watched)
		t.Logf("read %d: client sent %d, server received %d; active %d/%d", i, clientTotals.get(roleClient).BytesSent,
			serverTotals.get(roleServer).BytesReceived, clientTotals.get(roleClient).Active, serverTotals.get(roleServer).Active)
	}
	assert.Equal(t, uint64(payload)-foundSent, clientTotals.get(roleClient).BytesSent, "client's bytes sent since found, while open")
	assert.Equal(t, serverTotals.get(roleServer).BytesReceived, clientTotals.get(roleClient).BytesSent, "both ends agree while open")
	require.NoError(t, client.Close())
	require.NoError(t, server.Close())
	time.Sleep(200 * time.Millisecond)
	drainInto(t, tr, watched)
	t.Logf("after close: client sent %d, server received %d", clientTotals.get(roleClient).BytesSent, serverTotals.get(roleServer).BytesReceived)
}
