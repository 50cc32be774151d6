package netnstest

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a thread inside the pod's network namespace. Sockets fn creates belong to the
// pod for their whole life, even after the thread returns to the host namespace.
func (p *Pod) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never returned to the pool: it dies with this goroutine, so no other
		// goroutine can inherit its namespace if restoring fails.
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + p.Name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
