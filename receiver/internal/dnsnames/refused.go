//go:build linux

package dnsnames

import (
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// whyRefused says why the kernel refused the DNS program's attach at cgroup with EPERM. Either
// podnet lacks CAP_NET_ADMIN, or another program is attached there for cgroup_skb ingress
// without BPF_F_ALLOW_MULTI (exclusive, or override): the kernel then allows no second one,
// whatever the capabilities (found by an independent check: a root collector told it needed
// CAP_NET_ADMIN). The query also needs CAP_NET_ADMIN, so a program it finds rules that out.
func whyRefused(cgroup string) string {
	const noCapability = "attaching cgroup programs needs CAP_NET_ADMIN"
	dir, err := os.Open(cgroup)
	if err != nil {
		return noCapability
	}
	defer dir.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(dir.Fd()), Attach: ebpf.AttachCGroupInetIngress})
	if err != nil || len(res.Programs) == 0 {
		return noCapability
	}
	others := make([]string, 0, len(res.Programs))
	for _, p := range res.Programs {
		others = append(others, programName(p.ID))
	}
	return fmt.Sprintf("another program is attached there for cgroup_skb ingress without BPF_F_ALLOW_MULTI (%s), and the kernel "+
		"then allows no second one: its owner must attach it with that flag (bpftool: multi; a link always has it) for podnet to learn DNS names",
		strings.Join(others, ", "))
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
