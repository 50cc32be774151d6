//go:build linux && (amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// EventReader reads the programs' events: *ringbuf.Reader for the shared ring, *cpuRings for
// one ring per CPU. SetDeadline, ReadInto, Flush and Close mean what they mean for
// ringbuf.Reader.
type EventReader interface {
	SetDeadline(time.Time)
	ReadInto(*ringbuf.Record) error
	Flush() error
	// BufferSize is the memory of every ring together.
	BufferSize() int
	Close() error
}

// minCPURing is the smallest ring per CPU: ~480 events, a few milliseconds of a CPU busy with
// nothing but short connections, so a reader woken at a quarter of it drains in time.
const minCPURing = 64 << 10

// cpuRingSize splits the ring_buffer_size budget between the CPUs: each ring a power of two
// (the kernel's rule), at least minCPURing, so memory is about budget and never more than
// cpus × minCPURing.
func cpuRingSize(budget uint32, cpus int) uint32 {
	each := budget / uint32(max(cpus, 1))
	size := uint32(minCPURing)
	for size*2 <= each {
		size *= 2
	}
	return size
}

// fairShare is how many records in a row one ring gives before the next ring's turn: a CPU
// that keeps its ring full cannot hold back the events of the others.
const fairShare = 256

// cpuRings reads every CPU's ring as one stream, each CPU's events in their order (events of
// different CPUs are not ordered: records carry their timestamps). One epoll set waits on all
// rings and on an eventfd that Flush and Close signal.
type cpuRings struct {
	mu       sync.Mutex
	rings    []*ringbuf.Reader
	maps     []*ebpf.Map // each reader's ring, held open while its reader and the epoll set use it
	epfd     int
	wake     int // eventfd
	closed   atomic.Bool
	deadline time.Time
	pending  error // what the last wait returned, reported once the rings are empty
	next     int   // the ring read next
	taken    int   // records taken from rings[next] in a row
	ready    []unix.EpollEvent
	size     int
}

// openCPURings puts one ring of size bytes in every slot of outer (an array of ring buffers,
// one slot per possible CPU) and opens a reader on all of them.
func openCPURings(outer *ebpf.Map, inner *ebpf.MapSpec, size uint32) (_ *cpuRings, err error) {
	c := &cpuRings{epfd: -1, wake: -1}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if c.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if c.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err = c.watch(c.wake); err != nil {
		return nil, err
	}
	spec := inner.Copy()
	spec.MaxEntries = size
	for cpu := range outer.MaxEntries() {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return nil, fmt.Errorf("creating the ring of CPU %d (%d bytes: ring_buffer_size split between the CPUs, at least %d): lower ring_buffer_size or use ring_buffers: shared: %w", cpu, size, minCPURing, err)
		}
		err = outer.Put(cpu, m)
		var r *ringbuf.Reader
		if err == nil {
			r, err = ringbuf.NewReader(m)
		}
		if err == nil {
			err = c.watch(m.FD())
		}
		c.maps = append(c.maps, m)
		if err != nil {
			if r != nil {
				_ = r.Close()
			}
			return nil, fmt.Errorf("the ring of CPU %d: %w", cpu, err)
		}
		r.SetDeadline(time.Unix(1, 0)) // never block on one ring: the epoll set waits for all
		c.rings = append(c.rings, r)
		c.size += r.BufferSize()
	}
	c.ready = make([]unix.EpollEvent, len(c.rings)+1)
	return c, nil
}

func (c *cpuRings) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// SetDeadline bounds how long ReadInto waits for an empty set of rings (zero: no bound).
func (c *cpuRings) SetDeadline(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
}

// ReadInto returns the next record of any ring. Once every ring is empty it waits until one
// is woken, the deadline passes (os.ErrDeadlineExceeded) or Flush is called
// (ringbuf.ErrFlushed); like ringbuf.Reader, it reports those only after reading what the
// rings held when they happened.
func (c *cpuRings) ReadInto(rec *ringbuf.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed.Load() {
			return fmt.Errorf("ringbuffer: %w", ringbuf.ErrClosed)
		}
		if ok, err := c.readAny(rec); ok || err != nil {
			return err
		}
		if err := c.pending; err != nil {
			c.pending = nil
			return err
		}
		c.pending = c.wait()
	}
}

// readAny reads one record from the ring whose turn it is, or the next one that has any.
func (c *cpuRings) readAny(rec *ringbuf.Record) (bool, error) {
	for range len(c.rings) + 1 {
		r := c.rings[c.next]
		if c.taken < fairShare && r.AvailableBytes() > 0 {
			err := r.ReadInto(rec)
			if err == nil {
				c.taken++
				return true, nil
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return false, err
			}
		}
		c.next, c.taken = (c.next+1)%len(c.rings), 0
	}
	return false, nil
}

// wait blocks until a ring is woken (nil), the deadline passes, or Flush or Close is called.
func (c *cpuRings) wait() error {
	timeout := -1
	if !c.deadline.IsZero() {
		timeout = int(max(time.Until(c.deadline).Milliseconds(), 0))
	}
	n, err := unix.EpollWait(c.epfd, c.ready, timeout)
	for errors.Is(err, unix.EINTR) {
		n, err = unix.EpollWait(c.epfd, c.ready, timeout)
	}
	if err != nil {
		return fmt.Errorf("epoll wait: %w", err)
	}
	if n == 0 {
		return os.ErrDeadlineExceeded
	}
	for _, ev := range c.ready[:n] {
		if int(ev.Fd) != c.wake {
			continue
		}
		var buf [8]byte
		_, _ = unix.Read(c.wake, buf[:]) // resets the count: one Flush, one ErrFlushed
		if c.closed.Load() {
			return fmt.Errorf("ringbuffer: %w", ringbuf.ErrClosed)
		}
		return ringbuf.ErrFlushed
	}
	return nil
}

// Flush wakes a waiting ReadInto, which then returns what the rings hold, then
// ringbuf.ErrFlushed.
func (c *cpuRings) Flush() error { return c.signal() }

func (c *cpuRings) signal() error {
	one := [8]byte{1}
	if _, err := unix.Write(c.wake, one[:]); err != nil {
		return fmt.Errorf("waking the ring reader: %w", err)
	}
	return nil
}

// BufferSize is the memory of every CPU's ring together.
func (c *cpuRings) BufferSize() int { return c.size }

// Close unblocks a concurrent ReadInto (which returns ringbuf.ErrClosed), then closes every
// ring's reader.
func (c *cpuRings) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.wake >= 0 {
		_ = c.signal()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, r := range c.rings {
		errs = append(errs, r.Close())
	}
	c.rings = nil
	for _, m := range c.maps {
		errs = append(errs, m.Close())
	}
	c.maps = nil
	for _, fd := range []int{c.epfd, c.wake} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	return errors.Join(errs...)
}
