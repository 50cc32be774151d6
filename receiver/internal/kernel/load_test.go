package kernel

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// load is a connection generator inside a pod: workers dial a server in the same pod over
// loopback and close at once, counting what they did.
type load struct {
	ok, failed atomic.Int64
	port       int // the server's, once run has started
}

// run makes connections from workers goroutines for d, then waits until the server has
// accepted and closed every one.
func (l *load) run(t *testing.T, pod *netnstest.Pod, workers int, d time.Duration) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, pod.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}))
	l.port = ln.Addr().(*net.TCPAddr).Port
	var served sync.WaitGroup
	var accepted atomic.Int64
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pod.Do(func() error {
				for time.Now().Before(stop) {
					c, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						l.failed.Add(1)
						continue
					}
					l.ok.Add(1)
					_ = c.Close()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return accepted.Load() == l.ok.Load() }, 10*time.Second, 10*time.Millisecond)
	_ = ln.Close()
	served.Wait()
}

// tally counts the records a reader read: all of them, and the pod's by kind.
type tally struct {
	mu    sync.Mutex
	all   int
	kinds map[kind]int
	done  chan struct{} // closed when the reader has stopped
}

// readContinuously reads the ring until stop is closed and the ring is empty.
func readContinuously(t *testing.T, tr *Tracer, netns uint32, stop <-chan struct{}) *tally {
	tl := &tally{kinds: map[kind]int{}, done: make(chan struct{})}
	go func() {
		defer close(tl.done)
		var rec ringbuf.Record
		stopping := false
		for {
			tr.Events().SetDeadline(time.Now().Add(20 * time.Millisecond))
			err := tr.Events().ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if stopping {
					return
				}
				select {
				case <-stop:
					stopping = true // one more empty read after the stop: the ring is empty
				default:
				}
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			e := (*bpf.PodnetEvent)(unsafe.Pointer(&rec.RawSample[0]))
			tl.mu.Lock()
			tl.all++
			if e.NetnsIno == netns {
				tl.kinds[kind{e.Type, e.Role}]++
			}
			tl.mu.Unlock()
		}
	}()
	t.Cleanup(func() { <-tl.done })
	return tl
}

// collector reads a tracer's ring continuously into a list of one namespace's events, so that
// other traffic on the machine (parallel test packages, benchmarks) cannot fill the ring while
// a test waits.
type collector struct {
	mu     sync.Mutex
	events []bpf.PodnetEvent
	stop   chan struct{}
	done   chan struct{}
}

func collectRing(t *testing.T, tr *Tracer, netns uint32) *collector {
	return collectRingWhere(t, tr, inNetns(netns))
}

// collectRingWhere is collectRing keeping the events keep accepts.
func collectRingWhere(t *testing.T, tr *Tracer, keep func(*bpf.PodnetEvent) bool) *collector {
	c := &collector{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var rec ringbuf.Record
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			tr.Events().SetDeadline(time.Now().Add(10 * time.Millisecond))
			err := tr.Events().ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				return // closed
			}
			e := *(*bpf.PodnetEvent)(unsafe.Pointer(&rec.RawSample[0]))
			if keep(&e) {
				c.mu.Lock()
				c.events = append(c.events, e)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

// take returns the events collected since the last take.
func (c *collector) take() []bpf.PodnetEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.events
	c.events = nil
	return out
}

func (c *collector) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// settled waits until every connection of the pods has closed (listeners may stay), then
// returns what the collector read: every event of those connections is in by then.
func (c *collector) settled(t *testing.T, pods ...*netnstest.Pod) []bpf.PodnetEvent {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, p := range pods {
			for _, s := range p.OpenTCPSockets() {
				if !strings.HasPrefix(s, "LISTEN") {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "every connection of the pods closed")
	time.Sleep(50 * time.Millisecond) // the reader's last poll
	return c.take()
}
