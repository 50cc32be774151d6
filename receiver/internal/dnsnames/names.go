//go:build linux

package dnsnames

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// Options configure Open.
type Options struct {
	// CgroupRoot is the root of the node's cgroup v2 hierarchy, where the program is attached:
	// from there it runs for the sockets of every cgroup below, in every network namespace.
	CgroupRoot string
	// MaxNames bounds the table of (network namespace, address) → name.
	MaxNames int
	// RingSize is the kernel→user buffer of responses in bytes (a power of two, a multiple of
	// the page size); 0 means DefaultRingSize.
	RingSize uint32
	// Poll is how often the responses are read when no lookup asks first.
	Poll time.Duration
	// Report, if set, gets the counters after each poll and a last time at Close (from one
	// goroutine at a time).
	Report func(Counters)
}

// DefaultRingSize holds ~800 responses of the largest copy, ~5000 typical ones, between two
// reads (bpf/dns.bpf.c, dns_responses).
const DefaultRingSize = 1 << 20

// sweepEvery is how often expired names are dropped (they are never used once expired, so
// this only bounds how long their memory stays).
const sweepEvery = 10 * time.Second

// Names is the DNS-names program attached, its ring read into a Table. Safe for concurrent use.
type Names struct {
	coll *ebpf.Collection
	link link.Link
	id   ebpf.ProgramID

	mu        sync.Mutex // guards everything below, and reading the ring
	ring      *ringbuf.Reader
	table     *Table
	clock     *event.Clock
	rec       ringbuf.Record
	answers   []Answer
	stats     Stats
	lastSweep time.Time

	report    func(Counters)
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Stats are what user space counted of the responses it read.
type Stats struct {
	// Responses: responses read from the ring.
	Responses uint64
	// Malformed: responses that did not parse (or parsed only in part: a copy cut short, a TCP
	// segment that continues a message and parses as a malformed one); their answers before the
	// fault are kept.
	Malformed uint64
	// Evicted: valid names dropped because the table was full (Options.MaxNames).
	Evicted uint64
}

// Counters are the kernel's and user space's counts since Open.
type Counters struct {
	Stats
	// Seen: DNS responses delivered to a socket on the node (the kernel's count).
	Seen uint64
	// Lost: responses the kernel could not copy because the ring was full.
	Lost uint64
	// NoSocket: responses delivered without a socket to name their network namespace (none
	// expected: the hook runs on socket delivery).
	NoSocket uint64
	// Detached: the program's link lost its cgroup, detached by something else (`bpftool link
	// detach`): no response is seen since, and nothing else would tell.
	Detached bool
}

var errClosed = errors.New("dnsnames: closed")

// ErrNoCgroup2: the node has no cgroup v2 hierarchy to attach to.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy to attach the DNS program to")

// Open loads the program, attaches it at opts.CgroupRoot and starts reading its responses.
// Nothing stays loaded when it fails.
func Open(opts Options) (*Names, error) {
	if opts.CgroupRoot == "" {
		return nil, ErrNoCgroup2
	}
	if opts.MaxNames < 1 {
		return nil, fmt.Errorf("MaxNames %d must be at least 1", opts.MaxNames)
	}
	spec, err := bpf.LoadDns()
	if err != nil {
		return nil, err
	}
	ring := opts.RingSize
	if ring == 0 {
		ring = DefaultRingSize
	}
	spec.Maps[bpf.DnsMapDnsResponses].MaxEntries = ring
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading the DNS program: %w", err)
	}
	n := &Names{coll: coll, table: NewTable(opts.MaxNames), clock: event.NewClock(), stop: make(chan struct{}), done: make(chan struct{})}
	if err := n.attach(opts.CgroupRoot); err != nil {
		close(n.done) // no reader goroutine
		_ = n.Close()
		return nil, err
	}
	poll := opts.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	n.report = opts.Report
	go n.run(poll)
	return n, nil
}

// attach opens the ring's reader and attaches the program.
func (n *Names) attach(cgroupRoot string) (err error) {
	prog := n.coll.Programs[bpf.DnsProgDnsIngress]
	if info, err := prog.Info(); err == nil {
		n.id, _ = info.ID()
	}
	if n.ring, err = ringbuf.NewReader(n.coll.Maps[bpf.DnsMapDnsResponses]); err != nil {
		return err
	}
	if st, err := os.Stat(cgroupRoot); err != nil || !st.IsDir() {
		return fmt.Errorf("cgroup root %q: %w", cgroupRoot, errors.Join(ErrNoCgroup2, err))
	}
	n.link, err = link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: ebpf.AttachCGroupInetIngress, Program: prog})
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("attaching the DNS program (cgroup_skb/ingress) at %s: %w: %s", cgroupRoot, err, whyRefused(cgroupRoot))
	}
	if err != nil {
		return fmt.Errorf("attaching the DNS program (cgroup_skb/ingress) at %s: %w", cgroupRoot, err)
	}
	return nil
}

// run reads the ring every poll, so it never fills while no lookup reads it.
func (n *Names) run(poll time.Duration) {
	defer close(n.done)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.Refresh()
			n.reportCounters()
		}
	}
}

func (n *Names) reportCounters() {
	if n.report == nil {
		return
	}
	if c, err := n.Counters(); err == nil {
		n.report(c)
	}
}

// Refresh reads every response the kernel has copied so far into the table. A lookup for an
// event calls it first: a response that arrived before the event's connect is then known.
func (n *Names) Refresh() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refreshLocked()
}

func (n *Names) refreshLocked() {
	if n.ring == nil {
		return
	}
	n.clock.Sync()
	n.ring.SetDeadline(time.Unix(1, 0)) // in the past: read what is there, never wait
	for {
		if err := n.ring.ReadInto(&n.rec); err != nil {
			break // empty (deadline), or closed
		}
		n.add(n.rec.RawSample)
	}
	now := time.Now()
	if now.Sub(n.lastSweep) >= sweepEvery {
		n.table.SweepExpired(now.UnixNano())
		n.lastSweep = now
	}
	n.stats.Evicted = n.table.Evicted
}

const headerSize = int(unsafe.Offsetof(bpf.DnsResponse{}.Payload))

// add parses one copied response into the table.
func (n *Names) add(raw []byte) {
	n.stats.Responses++
	if len(raw) < headerSize {
		n.stats.Malformed++
		return
	}
	// A record is the header and only the bytes captured, so the header is copied out: a
	// *bpf.DnsResponse over the record itself would reach past its end (Go's pointer rules,
	// and -race's checkptr, forbid that even when only header fields are read).
	var r bpf.DnsResponse
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), headerSize), raw)
	captured := min(int(r.Captured), len(raw)-headerSize)
	msg := raw[headerSize : headerSize+captured]
	var err error
	if r.Transport == ipprotoTCP {
		n.answers, err = ParseTCP(msg, int(r.Length), n.answers[:0])
	} else {
		n.answers, err = Parse(msg, captured < int(r.Length), n.answers[:0])
	}
	// Not counted: what is no successful response, a response that names no host (a resolver's
	// root priming query, `. NS`), and one cut by podnet's own copy (or its segment) whose answers
	// before the cut were used: each is what it should be (found by an independent check:
	// counted dropped, which says that podnet lost something).
	cutByCopy := captured < int(r.Length) && len(n.answers) > 0
	if err != nil && !errors.Is(err, errNotResponse) && !errors.Is(err, errNoQuestion) && !cutByCopy {
		n.stats.Malformed++
	}
	at := int64(n.clock.UnixNano(r.TimeNs))
	for _, a := range n.answers {
		n.table.Add(r.NetnsIno, a.Addr, a.Name, at, a.TTL)
	}
}

const ipprotoTCP = 6

// Lookup is the name the network namespace netns resolved to addr, valid at time at (unix ns):
// "" when it resolved none (or its TTL had run out).
func (n *Names) Lookup(netns uint32, addr netip.Addr, at int64) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.Lookup(netns, addr, at)
}

// LookupDuring is the name netns resolved to addr that was valid at some time in [from, to].
func (n *Names) LookupDuring(netns uint32, addr netip.Addr, from, to int64) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.LookupDuring(netns, addr, from, to)
}

// Counters sums the kernel's per-CPU counters and adds user space's.
func (n *Names) Counters() (Counters, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coll == nil {
		return Counters{}, errClosed
	}
	var sums [bpf.DnsCounterCOUNTERS]uint64
	m := n.coll.Maps[bpf.DnsMapDnsCounters]
	for i := range sums {
		var perCPU []uint64
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return Counters{}, err
		}
		for _, v := range perCPU {
			sums[i] += v
		}
	}
	return Counters{
		Stats: n.stats, Seen: sums[bpf.DnsCounterCOUNTER_SEEN], Lost: sums[bpf.DnsCounterCOUNTER_LOST],
		NoSocket: sums[bpf.DnsCounterCOUNTER_NO_SOCKET], Detached: n.detached(),
	}, nil
}

// detached says whether the link was detached from its cgroup: the kernel then reports it
// attached to none (cgroup id 0). A link podnet cannot read is taken as attached.
func (n *Names) detached() bool {
	if n.link == nil {
		return false
	}
	info, err := n.link.Info()
	if err != nil {
		return false
	}
	cg := info.Cgroup()
	return cg != nil && cg.CgroupId == 0
}

// ProgramID is the attached program's id (bpftool prog show id N).
func (n *Names) ProgramID() ebpf.ProgramID { return n.id }

// Close detaches and unloads the program and stops reading. Safe to call more than once.
func (n *Names) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Names) close() error {
	close(n.stop)
	<-n.done
	// The program first, so that the last read and report hold everything it copied.
	var errs []error
	if n.link != nil {
		errs = append(errs, n.link.Close())
	}
	n.Refresh()
	n.reportCounters()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ring != nil {
		errs = append(errs, n.ring.Close())
		n.ring = nil
	}
	n.coll.Close()
	n.coll = nil
	return errors.Join(errs...)
}
