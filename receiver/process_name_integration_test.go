package podnetreceiver

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/podnet/podnet/internal/netnstest"
)

// A process name that is not UTF-8 (a multi-byte character the kernel's 15-byte comm cuts in
// two, or any bytes prctl sets) is carried with U+FFFD for each invalid sequence: OTLP strings
// must be UTF-8, and an exporter or backend that checks refuses the whole batch (an independent
// check found the file exporter writing such bytes into its JSON).
func TestProcessNameIsValidUTF8(t *testing.T) {
	netw := netnstest.NewNetwork(t, 249)
	client, server := netw.AddPod(), netw.AddPod()
	logs, _, stop := startReceiverOpts(t, componenttest.NewNopHost(), func(*Config) {}, func(*podnetReceiver) {})
	dst := netip.AddrPortFrom(server.IPv4, 7249)
	accepted := make(chan struct{}, 1)
	stopServer := server.AcceptAll(t, dst, func(netip.AddrPort, netip.AddrPort) { accepted <- struct{}{} })

	// The main thread's comm names the process (this test's, so the server's end is named so too).
	main := fmt.Sprintf("/proc/self/task/%d/comm", os.Getpid())
	old, err := os.ReadFile(main)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(main, []byte("podnet-\xc3\xff"), 0))
	t.Cleanup(func() { _ = os.WriteFile(main, bytes.TrimSpace(old), 0) })

	require.NoError(t, client.Do(func() error {
		c, err := net.Dial("tcp", dst.String())
		if err == nil {
			err = c.Close()
		}
		return err
	}))
	// Stopped only once it accepted: a connection still queued when its listener closes is reset
	// and reported at its close, with no process (as the README says), which is not this test.
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never accepted the connection")
	}
	stopServer()
	settle(t, logs, 4, client, server)
	stop()

	rs := records(logs.AllLogs(), client.NetnsInode(), server.NetnsInode())
	require.Len(t, rs, 4, dump(rs))
	for _, r := range rs {
		name, _ := r.attrs["process.executable.name"].(string)
		assert.True(t, utf8.ValidString(name), "%s: %q", r.name, name)
		assert.Equal(t, "podnet-\uFFFD", name, r.name)
	}
}
