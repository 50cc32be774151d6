package netnstest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
)

// Spawned is a helper process running in a pod, talked to over its stdin and stdout.
type Spawned struct {
	Cmd *exec.Cmd
	In  io.WriteCloser
	Out *bufio.Reader
}

// Spawn runs this test binary in the pod (and its cgroup) with env set, as a helper that
// MaybeRunHelper or the caller's TestMain dispatches on. It is killed at cleanup if still running.
func (p *Pod) Spawn(t testing.TB, env string, args ...string) *Spawned {
	t.Helper()
	cmd := p.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &Spawned{Cmd: cmd, In: in, Out: bufio.NewReader(out)}
}
