package kernel

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/podnet/podnet/internal/netnstest"
)

// Every option loads, alone and all together, with each hook mode. The verifier limits a
// program and the subprograms it calls to 512 bytes of stack together, except where the kernel
// gives tracing programs private stacks (6.13+, and not every build: this machine's kernel once
// did, then did not): options that compile a subprogram call in (exclude, sampling, the
// backends) must fit that budget. Found when a kernel update refused sampling and exclusions.
func TestEveryOptionLoads(t *testing.T) {
	netnstest.RequireRoot(t)
	options := map[string]func(*Options){
		"aggregate": func(o *Options) { o.AggregateInKernel = true },
		"events":    func(o *Options) { o.Events = true },
		"sampling":  func(o *Options) { o.SampleOneIn = 100 },
		"exclude": func(o *Options) {
			o.ExcludePorts, o.ExcludePeers = []uint16{9}, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
		},
		// The most the config takes (256 of each), with a range that needs the IPv4 guard entry
		// besides (found by an independent check: ENOSPC at Start).
		"most exclusions": func(o *Options) {
			o.ExcludePorts, o.ExcludePeers = nil, []netip.Prefix{netip.MustParsePrefix("::/0")}
			for i := range 255 {
				o.ExcludePorts = append(o.ExcludePorts, uint16(1000+i))
				o.ExcludePeers = append(o.ExcludePeers, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x99, 15: byte(i)}), 128))
			}
			o.ExcludePorts = append(o.ExcludePorts, 9)
		},
		"no process context": func(o *Options) { o.NoProcessContext = true },
		"probed reads":       func(o *Options) { o.ProbedReads = true },
		"no live reads":      func(o *Options) { o.NoLiveReads = true },
		"unmarked reads":     func(o *Options) { o.UnmarkedReads = true },
		"per-CPU rings":      func(o *Options) { o.PerCPURings = true },
		"backends":           func(o *Options) { o.NATNetns = "/proc/self/ns/net" },
		"backend in metrics": func(o *Options) { o.NATNetns, o.BackendInMetrics = "/proc/self/ns/net", true },
		"socket LB":          func(o *Options) { o.SocketLB = true },
	}
	base := func(hooks HookMode) Options {
		return Options{Hooks: hooks, RingBufferSize: 1 << 16, MaxTrackedConnections: 1024, MaxAggregates: 64}
	}
	load := func(name string, o Options) {
		tr, err := Open(o)
		if !assert.NoError(t, err, "%s with hooks %s", name, o.Hooks) {
			return
		}
		assert.NoError(t, tr.BackendsErr(), "%s with hooks %s: the backends' programs", name, o.Hooks)
		assert.NoError(t, tr.IteratorsUnavailable(), "%s with hooks %s: the iterators", name, o.Hooks)
		assert.NoError(t, tr.Close())
	}
	for _, hooks := range []HookMode{HooksTPBTF, HooksTracepoint} {
		for _, aggregate := range []bool{false, true} {
			all := base(hooks)
			for name, set := range options {
				o := base(hooks)
				o.AggregateInKernel = aggregate
				o.Events = !aggregate
				set(&o)
				load(name, o)
				// These only take work away (no process context: the syscall hooks, and with them
				// socket LB's read of the dialled address, which an independent check found
				// refused with in-kernel aggregation and events together).
				if name != "unmarked reads" && name != "no live reads" && name != "no process context" {
					set(&all)
				}
			}
			all.AggregateInKernel, all.Events = aggregate, true
			load("everything", all)
		}
	}
}
