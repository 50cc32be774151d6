package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// The helper mode "hold-without-main-thread": connects n times and keeps the connections in
// threads that outlive the main one (a process whose main thread called pthread_exit). Its
// main goroutine must run on the main thread, which only a lock taken during init guarantees.
const orphanedThreadsMode = "hold-without-main-thread"

func init() {
	if os.Getenv(helperEnv) == orphanedThreadsMode {
		runtime.LockOSThread()
	}
}

// holdWithoutMainThread dials addr n times, names every thread but the main one "worker",
// prints "holding", and ends the main thread alone (exit, not exit_group): the other threads
// and the descriptors live on until the process is killed. The Go runtime cannot stop the
// world without its main thread, so nothing runs after that but blocked threads.
func holdWithoutMainThread(addr, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	main := strconv.Itoa(os.Getpid())
	for _, task := range tasks {
		if task.Name() != main {
			if err := os.WriteFile("/proc/self/task/"+task.Name()+"/comm", []byte("worker"), 0); err != nil {
				return err
			}
		}
	}
	if unix.Gettid() != os.Getpid() {
		return errors.New("the helper's main goroutine is not on the main thread")
	}
	fmt.Println("holding")
	runtime.KeepAlive(conns)
	_, _, _ = unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0) // never returns: ends this thread alone
	return nil
}
