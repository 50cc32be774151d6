//go:build linux

package dnsnames

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// whyRefused says why the kernel refused the DNS program's attach at cgroup with EPERM. Either
// podnet lacks CAP_NET_ADMIN, or another program is attached for cgroup_skb ingress without
// BPF_F_ALLOW_MULTI (exclusive, or override) at that cgroup or, exclusive, at an ancestor
// (`cgroup_root` may be a subtree): the kernel then allows no second one there, whatever the
// capabilities (found by independent checks: a root collector told it needed CAP_NET_ADMIN).
// The query also needs CAP_NET_ADMIN, so a program it finds rules that out.
func whyRefused(cgroup string) string {
	const noCapability = "attaching cgroup programs needs CAP_NET_ADMIN"
	for dir := filepath.Clean(cgroup); ; dir = filepath.Dir(dir) {
		if others := attachedAt(dir); len(others) > 0 {
			where := "there"
			if dir != filepath.Clean(cgroup) {
				where = "at its ancestor " + dir
			}
			return fmt.Sprintf("another program is attached %s for cgroup_skb ingress without BPF_F_ALLOW_MULTI (%s), and the kernel "+
				"then allows no second one: its owner must attach it with that flag (bpftool: multi; a link always has it) for podnet to learn DNS names",
				where, strings.Join(others, ", "))
		}
		if !inCgroup2(filepath.Dir(dir)) {
			return noCapability // dir is the hierarchy's root
		}
	}
}

// attachedAt names the programs attached directly at cgroup dir for cgroup_skb ingress.
func attachedAt(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetIngress})
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(res.Programs))
	for _, p := range res.Programs {
		names = append(names, programName(p.ID))
	}
	return names
}

// inCgroup2 says whether dir is on a cgroup v2 file system.
func inCgroup2(dir string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(dir, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC
}

// programName is "id N" and the program's name where the kernel gives it.
func programName(id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return fmt.Sprintf("id %d", id)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil || info.Name == "" {
		return fmt.Sprintf("id %d", id)
	}
	return fmt.Sprintf("id %d %q", id, info.Name)
}
