package kernel

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/internal/netnstest"
)

// process.executable.name is the process's name, not its threads': a connect and an accept made
// by threads that named themselves (as Java's, tokio's and Envoy's do) carry the main thread's
// comm, as ps shows it.
func TestProcessNameIsTheProcesssNotTheThreads(t *testing.T) {
	netw := netnstest.NewNetwork(t, 230)
	pod := netw.AddPod()
	tr := openEvents(t, 1<<22)
	mainComm, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	want := strings.TrimSpace(string(mainComm))

	// named runs fn in the pod on a thread named name (pod.Do locks it), then gives the thread
	// its name back.
	named := func(name string, fn func() error) error {
		return pod.Do(func() error {
			old, err := os.ReadFile("/proc/thread-self/comm")
			if err != nil {
				return err
			}
			if err := os.WriteFile("/proc/thread-self/comm", []byte(name), 0); err != nil {
				return err
			}
			defer func() { _ = os.WriteFile("/proc/thread-self/comm", bytes.TrimSpace(old), 0) }()
			return fn()
		})
	}
	var ln net.Listener
	require.NoError(t, pod.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:7103")
		return err
	}))
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		accepted <- named("acc-thread", func() error {
			s, err := ln.Accept()
			if err == nil {
				_ = s.Close()
			}
			return err
		})
	}()
	require.NoError(t, named("wrk-thread", func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			_ = c.Close()
		}
		return err
	}))
	require.NoError(t, <-accepted)

	var opens []bpf.PodnetEvent
	require.Eventually(t, func() bool {
		got, _ := readAll(t, tr, inNetns(pod.NetnsInode()))
		for _, e := range got {
			if e.Type == uint8(bpf.PodnetEventTypeEVENT_CONNECT) || e.Type == uint8(bpf.PodnetEventTypeEVENT_ACCEPT) {
				opens = append(opens, e)
			}
		}
		return len(opens) >= 2
	}, 5*time.Second, 10*time.Millisecond, "the connect and the accept")
	for _, e := range opens {
		assert.Equal(t, want, commOf(&e), "event type %d names the process", e.Type)
		assert.Equal(t, uint32(os.Getpid()), e.Pid)
	}
}

// commOf is an event's process name.
func commOf(e *bpf.PodnetEvent) string {
	var comm []byte
	for _, c := range e.Comm {
		if c == 0 {
			break
		}
		comm = append(comm, byte(c))
	}
	return string(comm)
}
