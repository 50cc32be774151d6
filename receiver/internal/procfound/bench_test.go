//go:build linux

package procfound

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/podnet/podnet/internal/netnstest"
)

const (
	benchPods        = 20
	benchConnsPerPod = 50 // loopback connections: 100 sockets (Conns) per namespace
)

// BenchmarkScan scans a node with 2,000 open sockets in 20 pod namespaces, each pod's held by
// its one process, and idle processes besides. The holders are started last, so they have
// the highest pids and the descriptor walk cannot stop early: the worst case.
func BenchmarkScan(b *testing.B) {
	for i, idle := range []int{0, 2000} {
		b.Run("idle_processes="+strconv.Itoa(idle), func(b *testing.B) {
			benchScan(b, byte(122+i), idle)
		})
	}
}

func benchScan(b *testing.B, subnet byte, idle int) {
	network := netnstest.NewNetwork(b, subnet)
	pods := make([]*netnstest.Pod, benchPods)
	for i := range pods {
		pods[i] = network.AddPod()
		startIdle(b, pods[i], idle/benchPods)
	}
	for _, pod := range pods {
		hand(b, pod, openLoopback(b, pod, benchConnsPerPod))
	}
	want := benchPods * benchConnsPerPod * 2
	conns, st, err := Scan("/proc", 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	if found := countHeldBy(conns, os.Getpid()); found != 0 {
		b.Fatalf("%d sockets still held by the benchmark itself", found)
	}
	if len(conns) < want {
		b.Fatalf("found %d sockets, want at least %d", len(conns), want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, st, err = Scan("/proc", 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	perScan := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(len(conns)), "conns")
	b.ReportMetric(float64(st.Processes), "processes")
	b.ReportMetric(perScan/float64(len(conns)), "ns/conn")
	b.ReportMetric(perScan/float64(st.Processes), "ns/process")
}

// openLoopback opens n loopback connections inside the pod and returns both ends of each.
func openLoopback(b *testing.B, pod *netnstest.Pod, n int) []*os.File {
	ln := listen(b, pod, "tcp4", "127.0.0.1:0")
	var files []*os.File
	for range n {
		c, s := connect(b, pod, "tcp4", ln.Addr().String(), ln)
		for _, conn := range []*net.TCPConn{c, s} {
			f, err := conn.File()
			if err != nil {
				b.Fatal(err)
			}
			_ = conn.Close()
			files = append(files, f)
		}
	}
	return files
}

// hand gives the sockets to a new process in the pod, its only holder from then on.
func hand(b *testing.B, pod *netnstest.Pod, files []*os.File) {
	cmd := pod.Command("sleep", "infinity")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pod.WaitInside(cmd.Process.Pid)
	for _, f := range files {
		_ = f.Close()
	}
}

// startIdle starts n sleeping processes in the pod (and a shell that waits for them), and
// returns once they all run.
func startIdle(b *testing.B, pod *netnstest.Pod, n int) {
	cmd := pod.Command("sh", "-c", fmt.Sprintf(`for i in $(seq %d); do sleep infinity & done; echo ready; wait`, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("idle processes in %s: %q %v", pod.Name, line, err)
	}
}

func countHeldBy(conns []Conn, pid int) int {
	n := 0
	for _, c := range conns {
		if c.PID == uint32(pid) {
			n++
		}
	}
	return n
}
