package kernel

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/bpfrun"
	"github.com/podnet/podnet/internal/netnstest"
)

// BenchmarkProgressReadPer10kSockets is the cost of one live-progress read (at each metrics
// interval: the read of open connections, and the drain of its keys) with 5,000 connections
// open between two pods, i.e. 10,000 tracked sockets: the walk of every connection (what
// `metrics_aggregation: events` and kernels without the mark hooks get), marked reads with all
// idle, and marked reads with 200 connections moving 4 KiB each way between reads. The moves
// happen outside the measurement (and settle for 20 ms first); the read's CPU is its thread's (RUSAGE_THREAD: the read
// sleeps while the kernel swaps maps), so cpu-ms/read/10k-sockets is the figure
// (target <= 1 ms per metrics interval).
func BenchmarkProgressReadPer10kSockets(b *testing.B) {
	for _, c := range []struct {
		name     string
		unmarked bool
		busy     int
		subnet   byte
	}{{"walk", true, 0, 105}, {"marked", false, 0, 206}, {"marked-200-busy", false, 200, 207}} {
		b.Run(c.name, func(b *testing.B) { benchProgressRead(b, c.unmarked, c.busy, c.subnet) })
	}
}

func benchProgressRead(b *testing.B, unmarked bool, busy int, subnet byte) {
	netw := netnstest.NewNetwork(b, subnet)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	tr, err := Open(Options{
		Hooks: HooksAuto, RingBufferSize: 1 << 22, MaxTrackedConnections: 65536, AggregateInKernel: true, MaxAggregates: 4096,
		UnmarkedReads: unmarked,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	if !unmarked && !tr.MarkedReads() {
		b.Fatal("marked reads did not load on this kernel")
	}
	const conns, payload = 5000, 4096
	clients, servers := connectPods(b, clientPod, serverPod, 7000+int(subnet), conns)
	sockets := 0
	drain := func() {
		sockets = 0
		if err := tr.DrainAggregates(func(k *bpf.PodnetAggKey, v *bpf.PodnetAggValue) { sockets += int(v.Active) }); err != nil {
			b.Fatal(err)
		}
	}
	move := func() {
		buf := make([]byte, payload)
		for i := range busy {
			for _, ends := range [][2]io.ReadWriter{{clients[i], servers[i]}, {servers[i], clients[i]}} {
				if _, err := ends[0].Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(ends[1], buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	drain()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prog := tr.iters.progress
	statsBefore := bpfrun.Of(b, prog)
	countersBefore, err := tr.Counters()
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		move()
		if busy > 0 {
			time.Sleep(20 * time.Millisecond) // the moves' ACKs and timers run before the read, not charged to it
		}
		var before, after unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &before)
		drain()
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &after)
		cpu += time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	}
	b.StopTimer()
	statsAfter := bpfrun.Of(b, prog)
	countersAfter, err := tr.Counters()
	if err != nil {
		b.Fatal(err)
	}
	if sockets < 2*conns {
		b.Fatalf("%d sockets active, want at least %d", sockets, 2*conns)
	}
	per10k := 10000 / float64(sockets)
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6*per10k, "cpu-ms/read/10k-sockets")
	b.ReportMetric(float64(countersAfter.ProgressVisited-countersBefore.ProgressVisited)/float64(b.N), "visited/read")
	if n := statsAfter.Runs - statsBefore.Runs; n > 0 { // the read alone (run statistics on: enableBPFStats)
		b.ReportMetric(float64(statsAfter.NS-statsBefore.NS)/float64(n)/1e6*per10k, "walk-ms/read/10k-sockets")
	}
}

// BenchmarkMarkPerSyscall is what marked reads cost the observed workload: the programs on
// tcp_sendmsg_locked and sk_data_ready, per send call or arrival, by the kernel's run statistics
// (one 64-byte exchange each way per op: two sends, two arrivals).
func BenchmarkMarkPerSyscall(b *testing.B) {
	tr := markedWithStats(b)
	netw := netnstest.NewNetwork(b, 208)
	clientPod, serverPod := netw.AddPod(), netw.AddPod()
	clients, servers := connectPods(b, clientPod, serverPod, 7208, 1)
	client, server := clients[0], servers[0]
	marks := markStats(b, tr)
	buf := make([]byte, 64)
	before := marks()
	b.ResetTimer()
	for range b.N {
		for _, ends := range [][2]io.ReadWriter{{client, server}, {server, client}} {
			if _, err := ends[0].Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(ends[1], buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	after := marks()
	b.ReportMetric(float64(after.NS-before.NS)/float64(after.Runs-before.Runs), "ns-in-bpf/mark")
	b.ReportMetric(float64(after.Runs-before.Runs)/float64(b.N)/4, "marks/syscall")
}

// BenchmarkMarkPerRequestConnection is what marked reads cost a request connection: connect,
// one 64-byte request and response, close, so that each socket's first marks (a new slot or a
// set insert) are most of them, as they are for short request traffic (nginx + wrk). The
// live read takes the sets every 1000 connections, as a metrics interval would. Per mark and
// per connection, by the kernel's run statistics (whose clock reads are ~40 ns of each mark).
func BenchmarkMarkPerRequestConnection(b *testing.B) {
	tr := markedWithStats(b)
	addr, _ := netnstest.LoopbackServerFunc(b, func(c net.Conn) { go echoOnce(c) })
	marks := markStats(b, tr)
	before := marks()
	buf := make([]byte, 64)
	b.ResetTimer()
	for i := range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		if i%1000 == 999 {
			if err := tr.DrainAggregates(func(*bpf.PodnetAggKey, *bpf.PodnetAggValue) {}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	after := marks()
	b.ReportMetric(float64(after.NS-before.NS)/float64(after.Runs-before.Runs), "ns-in-bpf/mark")
	b.ReportMetric(float64(after.NS-before.NS)/float64(b.N), "ns-in-bpf/conn")
	b.ReportMetric(float64(after.Runs-before.Runs)/float64(b.N), "marks/conn")
}

// echoOnce answers one 64-byte request on c with itself, then closes c.
func echoOnce(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64)
	if _, err := io.ReadFull(c, buf); err == nil {
		_, _ = c.Write(buf)
	}
}

// markedWithStats opens a marked tracer (openMarked) with the kernel's run statistics on, for
// benchmarks of the marks; root only.
func markedWithStats(b *testing.B) *Tracer {
	b.Helper()
	netnstest.RequireRoot(b)
	enableBPFStats(b)
	tr := openMarked(b)
	if !tr.MarkedReads() {
		b.Fatal("marked reads did not load on this kernel")
	}
	return tr
}

// markStats returns a function summing the run statistics of tr's mark programs.
func markStats(b *testing.B, tr *Tracer) func() bpfrun.Stats {
	return func() bpfrun.Stats {
		var s bpfrun.Stats
		for p := range markPrograms {
			if prog := tr.coll.Programs[p]; prog != nil {
				s = s.Add(bpfrun.Of(b, prog))
			}
		}
		return s
	}
}

// BenchmarkArrivalOnOtherSockets is what marked reads cost traffic that is not TCP: the
// sk_data_ready hook runs for every socket's arrivals (UDP datagrams, Unix socket writes) and
// stops at its type check. Reported by the kernel's run statistics, per run of the hook (whose
// own clock reads are ~50 ns of it) and runs per message.
func BenchmarkArrivalOnOtherSockets(b *testing.B) {
	tr := markedWithStats(b)
	arrived := tr.coll.Programs[bpf.PodnetProgArrivedTpBtf]
	for _, kind := range []struct {
		name          string
		domain, type_ int
	}{{"udp", unix.AF_INET, unix.SOCK_DGRAM}, {"unix", unix.AF_UNIX, unix.SOCK_STREAM}} {
		b.Run(kind.name, func(b *testing.B) {
			a, c := socketPair(b, kind.domain, kind.type_)
			buf := make([]byte, 64)
			before := bpfrun.Of(b, arrived)
			b.ResetTimer()
			for range b.N {
				if _, err := unix.Write(a, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := unix.Read(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			after := bpfrun.Of(b, arrived)
			if runs := after.Runs - before.Runs; runs > 0 {
				b.ReportMetric(float64(after.NS-before.NS)/float64(runs), "ns-in-bpf/run")
			}
			b.ReportMetric(float64(after.Runs-before.Runs)/float64(b.N), "runs/message")
		})
	}
}

// socketPair is two connected sockets: a Unix socketpair, or two UDP sockets on loopback.
func socketPair(b *testing.B, domain, typ int) (int, int) {
	b.Helper()
	if domain == unix.AF_UNIX {
		fds, err := unix.Socketpair(domain, typ, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
		return fds[0], fds[1]
	}
	var fds [2]int
	var addrs [2]unix.Sockaddr
	for i := range fds {
		fd, err := unix.Socket(domain, typ, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		if addrs[i], err = unix.Getsockname(fd); err != nil {
			b.Fatal(err)
		}
		fds[i] = fd
	}
	for i := range fds {
		if err := unix.Connect(fds[i], addrs[1-i]); err != nil {
			b.Fatal(err)
		}
	}
	return fds[0], fds[1]
}
