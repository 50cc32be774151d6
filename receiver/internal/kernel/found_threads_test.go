package kernel

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A process whose main thread has exited (its other threads hold its connections) shows the
// start-up scan each of its threads with the same descriptors: each connection is found once,
// not once per thread, and named by its process (the main thread's name, as ps shows it), not
// by the thread the scan came through (found by an independent check: 4 copies per connection,
// named after a worker thread).
func TestFoundOnceThroughEveryThread(t *testing.T) {
	netw := netnstest.NewNetwork(t, 245)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	addr := netip.AddrPortFrom(serverPod.IPv4, 7245)
	serverPod.AcceptAll(t, addr, nil) // closes the server ends at once: the client ends stay open
	const n = 40
	holder := clientPod.Spawn(t, "PODNET_NETNSTEST_HELPER=hold-without-main-thread", addr.String(), strconv.Itoa(n))
	line, err := holder.Out.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)
	pid := holder.Cmd.Process.Pid
	task := "/proc/" + strconv.Itoa(pid) + "/task/"
	require.Eventually(t, func() bool {
		stat, err := os.ReadFile(task + strconv.Itoa(pid) + "/stat")
		return err == nil && strings.Contains(string(stat), ") Z ")
	}, 5*time.Second, 10*time.Millisecond, "the holder's main thread exits")
	threads, err := os.ReadDir(task)
	require.NoError(t, err)
	require.Greater(t, len(threads), 2, "threads besides the exited main one")
	process, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	require.NoError(t, err)
	require.NotEqual(t, "worker\n", string(process))

	tr := openEvents(t, 1<<22)
	require.NoError(t, tr.IteratorsUnavailable())
	records := found(t, tr, clientPod.NetnsInode())
	ports := map[uint16]int{}
	for _, e := range records {
		if e.Pid != uint32(pid) {
			continue
		}
		ports[e.LocalPort]++
		assert.Equal(t, strings.TrimSpace(string(process)), commOf(&e), "the process's name")
		assert.Equal(t, uint8(bpf.PodnetEventTypeEVENT_FOUND), e.Type)
	}
	assert.Len(t, ports, n, "every connection found")
	for port, times := range ports {
		assert.Equal(t, 1, times, "connection from port %d found once", port)
	}
}
