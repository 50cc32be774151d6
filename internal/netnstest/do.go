package netnstest

import (
	"errors"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// errStopped is what Do returns when fn never returned: it called t.FailNow (require, t.Fatal,
// or Pod.Exec failing) on Do's goroutine. The test has already failed; this keeps it from
// hanging on a result that will never come.
var errStopped = errors.New("netnstest: the function run in the pod stopped without returning (t.FailNow called off the test goroutine)")

// Do runs fn on a thread inside the pod's network namespace. Sockets fn creates belong to the
// pod for their whole life, even after the thread returns to the host namespace.
func (p *Pod) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		err := errStopped // unless fn returns, or the namespace cannot be entered
		defer func() { errc <- err }()
		// The thread is never returned to the pool: it dies with this goroutine, so no other
		// goroutine can inherit its namespace if restoring fails.
		runtime.LockOSThread()
		target, openErr := os.Open("/run/netns/" + p.Name)
		if openErr != nil {
			err = openErr
			return
		}
		defer target.Close()
		if setErr := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); setErr != nil {
			err = setErr
			return
		}
		err = fn()
	}()
	return <-errc
}
