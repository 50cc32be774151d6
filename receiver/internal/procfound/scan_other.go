//go:build !linux

package procfound

import "errors"

// Scan needs Linux's /proc; elsewhere the receiver has no connections to find.
func Scan(string, int) ([]Conn, Stats, error) {
	return nil, Stats{}, errors.New("procfound: /proc scanning is Linux-only")
}
