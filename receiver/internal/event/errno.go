package event

import "golang.org/x/sys/unix"

// cancelled is error.type when the application closed a socket before its handshake ended
// (sk_err is 0 then; the kernel side reports ECANCELED).
const cancelled = "cancelled"

// ErrorType is the error.type of a failed connect: the errno's symbolic name, which is what
// users grep for (ECONNREFUSED, ETIMEDOUT...), or "cancelled".
func ErrorType(errno int32) string {
	if errno == int32(unix.ECANCELED) {
		return cancelled
	}
	if name := unix.ErrnoName(unix.Errno(errno)); name != "" {
		return name
	}
	return "_OTHER"
}
