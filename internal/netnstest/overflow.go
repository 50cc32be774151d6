package netnstest

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

func overflow(server, client *Pod, port, n int) error {
	var ln int
	if err := server.Do(func() (err error) {
		if ln, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err != nil {
			return err
		}
		if err = unix.Bind(ln, &unix.SockaddrInet4{Port: port, Addr: server.IPv4.As4()}); err != nil {
			return err
		}
		return unix.Listen(ln, 1)
	}); err != nil {
		return err
	}
	server.t.Cleanup(func() { _ = unix.Close(ln) })
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	if err := client.Do(func() error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: server.IPv4.As4()}); !errors.Is(err, unix.EINPROGRESS) {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	time.Sleep(1500 * time.Millisecond) // a round of SYN retransmissions, dropped too
	return nil
}
