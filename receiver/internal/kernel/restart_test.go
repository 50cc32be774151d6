package kernel

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// A collector restart under steady traffic: the new instance finds every connection still open
// (their opens were the old one's), and each connection's close is reported by exactly one of
// the two. Only connections that open and close entirely between the two (while none is
// loaded) are seen by neither.
func TestRestartUnderSteadyTrafficCountsEachConnectionOnce(t *testing.T) {
	netw := netnstest.NewNetwork(t, 106)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	cns := clientPod.NetnsInode()
	addr := net.JoinHostPort(serverPod.IPv4.String(), strconv.Itoa(7106))
	serverPod.DiscardAll(t, netip.MustParseAddrPort(addr))

	type seen struct{ opens, found, closes int }
	byPort := map[uint16]*seen{}
	get := func(port uint16) *seen {
		if byPort[port] == nil {
			byPort[port] = &seen{}
		}
		return byPort[port]
	}
	record := func(events []bpf.PodnetEvent) {
		for _, e := range events {
			if e.Role != roleClient {
				continue
			}
			switch e.Type {
			case uint8(bpf.PodnetEventTypeEVENT_CONNECT):
				get(e.LocalPort).opens++
			case uint8(bpf.PodnetEventTypeEVENT_CLOSE):
				get(e.LocalPort).closes++
			}
		}
	}

	old, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 16})
	require.NoError(t, err)
	oldRing := collectRing(t, old, cns)
	// Steady traffic: connections that each live 0.3-1.3 s, opened continuously (the restart's
	// gap, while neither instance is loaded, lasts as long as a load: ~0.2 s here).
	stop := make(chan struct{})
	var dialErrors atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened := map[uint16]bool{} // client port -> closed yet
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = clientPod.Do(func() error {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return nil
					default:
					}
					c, err := net.Dial("tcp", addr)
					if err != nil {
						dialErrors.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
					mu.Lock()
					opened[port] = false
					mu.Unlock()
					go func() {
						time.Sleep(time.Duration(300+(i*37+w*11)%1000) * time.Millisecond)
						_ = c.Close()
						mu.Lock()
						opened[port] = true
						mu.Unlock()
					}()
					time.Sleep(2 * time.Millisecond)
				}
			})
		}()
	}

	time.Sleep(500 * time.Millisecond) // traffic under the old instance
	// Held open until the new instance has looked: open across the restart however long the
	// restart takes (on a loaded machine it can outlast the steady connections' 1.3 s).
	var held []net.Conn
	require.NoError(t, clientPod.Do(func() error {
		for range 3 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			held = append(held, c)
		}
		return nil
	}))
	heldPorts := map[uint16]bool{}
	for _, c := range held {
		port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		heldPorts[port] = true
		mu.Lock()
		opened[port] = false
		mu.Unlock()
	}
	require.NoError(t, old.Detach())
	time.Sleep(50 * time.Millisecond) // the collector empties the ring
	oldRing.close()
	events, _ := readAll(t, old, inNetns(cns))
	record(append(oldRing.take(), events...))
	assert.Zero(t, counters(t, old).ReserveFailed, "the old instance's ring never overflowed")
	require.NoError(t, old.Close())
	gap := time.Now()

	restarted, err := Open(Options{Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, MaxAggregates: 16})
	require.NoError(t, err)
	defer restarted.Close()
	newRing := collectRing(t, restarted, cns)
	hidden := watchHiddenCloses(t)
	_, err = restarted.FindExisting(func(e *bpf.PodnetEvent) {
		if e.NetnsIno == cns && e.Role == roleClient {
			get(e.LocalPort).found++
		}
	})
	require.NoError(t, err)
	t.Logf("neither instance loaded for %v", time.Since(gap).Round(time.Millisecond))
	for _, c := range held {
		port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		_ = c.Close()
		mu.Lock()
		opened[port] = true
		mu.Unlock()
	}
	time.Sleep(300 * time.Millisecond) // traffic under the new instance
	close(stop)
	wg.Wait()
	// Every connection closes within 1.3 s of its open; both ends' closes then reach the ring.
	closedAll := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, closed := range opened {
			if !closed {
				return false
			}
		}
		return true
	}
	require.Eventually(t, closedAll, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, s := range append(clientPod.OpenTCPSockets(), serverPod.OpenTCPSockets()...) {
			if !strings.HasPrefix(s, "LISTEN") {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every connection of the pods closed")
	time.Sleep(50 * time.Millisecond) // the collector empties the ring
	record(newRing.take())
	assert.Zero(t, counters(t, restarted).ReserveFailed, "the new instance's ring never overflowed")

	mu.Lock()
	defer mu.Unlock()
	var both, unseen, foundOnes int
	for port := range opened {
		s := get(port)
		require.True(t, opened[port], "port %d still open", port)
		assert.LessOrEqual(t, s.opens, 1, "port %d opened twice", port)
		assert.LessOrEqual(t, s.found, 1, "port %d found twice", port)
		if s.opens == 1 && s.found == 1 {
			both++ // opened under the old instance, still open at the restart
		}
		if s.opens+s.found == 0 {
			unseen++ // opened and closed while neither was loaded
			assert.Zero(t, s.closes, "port %d closed but never opened or found", port)
			continue
		}
		if s.found == 1 {
			foundOnes++
		}
		assert.LessOrEqual(t, s.closes, 1, "port %d: its close reported by both instances", port)
	}
	_, hiddenClient := hidden.count(7106)
	// Every found connection closed under the new instance: its close is reported, but for
	// closes hidden from BPF on the development VM. A connection the old instance saw open,
	// not found and not closed under either, closed between the two: seen by neither.
	foundUnclosed, closedInGap := 0, 0
	for port := range opened {
		s := get(port)
		if s.found == 1 && s.closes == 0 {
			foundUnclosed++
		}
		if s.opens == 1 && s.found == 0 && s.closes == 0 {
			closedInGap++
		}
	}
	t.Logf("dial errors %d", dialErrors.Load())
	t.Logf("%d connections: %d open across the restart (opened under the old instance, found by the new), %d found in all; %d opened and closed between the two, %d closed between the two; found but close not reported %d (hidden from BPF: %d)",
		len(opened), both, foundOnes, unseen, closedInGap, foundUnclosed, hiddenClient)
	for port := range heldPorts {
		s := get(port)
		// (Its close is checked with every found connection's, below.)
		assert.Equal(t, [2]int{1, 1}, [2]int{s.opens, s.found}, "port %d, held open across the restart: opened under the old instance, found by the new", port)
	}
	assert.GreaterOrEqual(t, both, len(heldPorts), "connections open across the restart")
	assert.Equal(t, hiddenClient, foundUnclosed, "found connections whose close was not reported: only those hidden from BPF")
}
