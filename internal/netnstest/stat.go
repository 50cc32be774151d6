package netnstest

import "golang.org/x/sys/unix"

type syscallStat = unix.Stat_t

func stat(path string, st *unix.Stat_t) error { return unix.Stat(path, st) }
