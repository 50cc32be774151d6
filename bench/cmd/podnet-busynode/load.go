package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// shortConnections makes n connect/accept/close connections at rate per second on the
// loopback of network namespace ns, from one thread that enters it, with plain system calls.
// A fixed rate makes podnet's per-connection CPU comparable between phases: its fixed cost
// per poll is spread over as many events whatever else the machine does.
func shortConnections(ns string, n, rate int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		errc <- func() error {
			fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return err
			}
			l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(l)
			addr := &unix.SockaddrInet4{Port: 9100, Addr: [4]byte{127, 0, 0, 1}}
			_ = unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if err := unix.Bind(l, addr); err != nil {
				return err
			}
			if err := unix.Listen(l, 128); err != nil {
				return err
			}
			begin := time.Now()
			for i := range n {
				if ahead := time.Duration(i)*time.Second/time.Duration(rate) - time.Since(begin); ahead > 0 {
					time.Sleep(ahead)
				}
				c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				if err := unix.Connect(c, addr); err != nil {
					unix.Close(c)
					return err
				}
				s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
				if err != nil {
					unix.Close(c)
					return err
				}
				unix.Close(c) // the client closes first: its TIME_WAIT spreads over the port range
				unix.Close(s)
			}
			return nil
		}()
	}()
	return <-errc
}

// newLoadNetns creates the namespace the short connections run in, with a process in it as
// every pod has (its pause container): a namespace no process is in stays unknown to podnet's
// /proc scan, and each of its events would ask for a rescan (at most one a second), which on
// this node would be measured instead of the per-connection cost.
func (n *node) newLoadNetns() (string, error) {
	ns := "pn17-" + n.tag + "-load"
	if err := run(nil, "ip", "netns", "add", ns); err != nil {
		return "", err
	}
	n.netns = append(n.netns, ns)
	if err := run(nil, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return ns, err
	}
	if err := run(nil, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		return ns, err
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return ns, err
	}
	n.pause = cmd
	return ns, nil
}

// processCPU is a process's user+system time from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// kiBField reads a "Name:   123 kB" line of a /proc status or meminfo file.
func kiBField(path, field string) int64 {
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kib int64
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	return 0
}
