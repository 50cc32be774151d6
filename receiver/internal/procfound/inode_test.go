//go:build linux

package procfound

import (
	"io/fs"
	"syscall"
)

func inodeOf(fi fs.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
