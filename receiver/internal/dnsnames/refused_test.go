//go:build linux

package dnsnames

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// A cgroup where another program is attached for cgroup_skb ingress without BPF_F_ALLOW_MULTI,
// or under an ancestor where one is (cgroup_root may be a subtree), refuses podnet's with EPERM
// whatever its capabilities: the error names that program, where, and the flag its owner must
// use, not CAP_NET_ADMIN, which podnet has (found by independent checks).
func TestAnExclusiveProgramAtTheCgroupIsNamedAsTheReasonForTheRefusal(t *testing.T) {
	netnstest.RequireRoot(t)
	root, err := netnstest.Cgroup2Mount()
	require.NoError(t, err)
	cgroup := filepath.Join(root, fmt.Sprintf("podnet-test-exclusive-%d", os.Getpid()))
	require.NoError(t, os.Mkdir(cgroup, 0o755))
	t.Cleanup(func() { _ = os.Remove(cgroup) })
	below := filepath.Join(cgroup, "below")
	require.NoError(t, os.Mkdir(below, 0o755))
	t.Cleanup(func() { _ = os.Remove(below) })
	dir, err := os.Open(cgroup)
	require.NoError(t, err)
	defer dir.Close()

	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "other_tool", Type: ebpf.CGroupSKB, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	require.NoError(t, err)
	defer pass.Close()
	attached := link.RawAttachProgramOptions{Target: int(dir.Fd()), Program: pass, Attach: ebpf.AttachCGroupInetIngress} // no flags: exclusive
	require.NoError(t, link.RawAttachProgram(attached))
	defer func() {
		require.NoError(t, link.RawDetachProgram(link.RawDetachProgramOptions{Target: attached.Target, Program: pass, Attach: attached.Attach}))
	}()
	info, err := pass.Info()
	require.NoError(t, err)
	id, _ := info.ID()

	for at, where := range map[string]string{cgroup: "there", below: "at its ancestor " + cgroup} {
		n, err := Open(Options{CgroupRoot: at, MaxNames: 16, Poll: time.Hour})
		if err == nil {
			_ = n.Close()
		}
		require.Error(t, err, "the kernel allows no second program beside an exclusive one, nor under it")
		assert.Contains(t, err.Error(), fmt.Sprintf("another program is attached %s for cgroup_skb ingress without BPF_F_ALLOW_MULTI (id %d \"other_tool\")", where, id))
		assert.NotContains(t, err.Error(), "CAP_NET_ADMIN")
	}
}

// A link something else detached (`bpftool link detach`) is said so in the counters the
// receiver warns from: the program then sees no response, and nothing else would tell (found
// by an independent check: names stopped, without a word).
func TestADetachedLinkIsReported(t *testing.T) {
	n := openNames(t)
	c, err := n.Counters()
	require.NoError(t, err)
	require.False(t, c.Detached, "attached")

	info, err := n.link.Info()
	require.NoError(t, err)
	other, err := link.NewFromID(info.ID) // as bpftool does, from outside
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, other.Detach())

	c, err = n.Counters()
	require.NoError(t, err)
	assert.True(t, c.Detached, "detached by something else")
}
