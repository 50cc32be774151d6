// Package procfound finds the TCP connections that were open before podnet started, from
// /proc alone, for kernels where the start-up scan's BPF iterators (iter/task_file with
// bpf_sock_from_file, 5.11+) do not load. It reports what the iterators report: each open
// connection once per local socket, its namespace, tuple, guessed role and one process holding
// it.
//
// It reads each network namespace's /proc/<pid>/net/tcp{,6} once, through any process living
// in it, and maps socket inodes to processes through /proc/<pid>/fd. It needs no setns, only
// what the collector has: hostPID, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.
package procfound // import "github.com/podnet/podnet/receiver/internal/procfound"
