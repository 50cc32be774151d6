package kubetest

// APIServerPID is the running kube-apiserver's process id, for reading its CPU time from
// /proc/<pid>/stat when measuring what clients cost it; 0 while it is stopped.
func (c *Cluster) APIServerPID() int {
	if c.apiserver.cmd == nil || c.apiserver.cmd.Process == nil {
		return 0
	}
	return c.apiserver.cmd.Process.Pid
}
