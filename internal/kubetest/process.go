package kubetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is one server the harness runs, its output kept in a file so a failing test can
// show why the server died without flooding every passing test's log.
type process struct {
	name    string
	path    string
	args    []string
	logPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped
}

func (p *process) start() error {
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig ends the server even when the test binary is killed (go test -timeout)
	// before its cleanups run: nothing may outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig follows the thread that forks, not the process: the server is started from
	// a thread locked to a goroutine that lives until the server is reaped. On any other
	// thread it would be killed whenever the Go runtime ends that thread — which it does to
	// every thread a goroutine leaves locked, as netnstest's Pod.Do does to enter a namespace.
	started := make(chan error)
	p.done = make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", p.name, err)
			return
		}
		started <- nil
		_ = cmd.Wait() // exit status is irrelevant: callers learn of exits through done
		close(p.done)
	}()
	if err := <-started; err != nil {
		return err
	}
	p.cmd = cmd
	return nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the server to shut down, then kills it once grace has passed (at once for
// zero). It is a no-op when the process is not running, so Cleanup may call it after a
// test's own Stop.
func (p *process) stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// logTail returns the end of the server's output for failure messages.
func (p *process) logTail() string {
	out, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	const keep = 4000
	if len(out) > keep {
		out = out[len(out)-keep:]
		out = out[bytes.IndexByte(out, '\n')+1:]
	}
	return string(out)
}

// freePort picks a loopback port for a server to listen on. Another process could take it
// before the server binds, which is unlikely enough on a test machine.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
