//go:build linux

package kernel

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// maxExclusions is what each exclusion map holds (bpf/maps.h): the config accepts no more.
const maxExclusions = 256

// setSelection sets the load-time knobs of bpf/select.h.
func setSelection(spec *ebpf.CollectionSpec, opts Options) error {
	n := uint32(len(opts.ExcludePorts) + len(opts.ExcludePeers))
	if err := spec.Variables[bpf.PodnetVarExclusions].Set(n); err != nil {
		return err
	}
	types := opts.RingTypes
	if types == 0 {
		types = ^uint32(0)
	}
	if err := spec.Variables[bpf.PodnetVarRingTypes].Set(types); err != nil {
		return err
	}
	if err := spec.Variables[bpf.PodnetVarProcessContext].Set(opts.syscallHooks()); err != nil {
		return err
	}
	if err := spec.Variables[bpf.PodnetVarLiveReads].Set(!opts.NoLiveReads); err != nil {
		return err
	}
	return spec.Variables[bpf.PodnetVarSampleOneIn].Set(max(opts.SampleOneIn, 1))
}

// fillExclusions writes `exclude` into the kernel's maps, before any program is attached.
func fillExclusions(coll *ebpf.Collection, opts Options) error {
	if len(opts.ExcludePorts) > maxExclusions || len(opts.ExcludePeers) > maxExclusions {
		return fmt.Errorf("at most %d excluded ports and %d excluded peer ranges", maxExclusions, maxExclusions)
	}
	one := uint8(1)
	for _, p := range opts.ExcludePorts {
		if err := coll.Maps[bpf.PodnetMapExcludedPorts].Put(p, one); err != nil {
			return fmt.Errorf("excluded port %d: %w", p, err)
		}
	}
	for _, p := range opts.ExcludePeers {
		k := peerPrefix(p)
		if err := coll.Maps[bpf.PodnetMapExcludedPeers].Put(&k, one); err != nil {
			return fmt.Errorf("excluded peer range %s: %w", p, err)
		}
	}
	return nil
}

// peerPrefix is a range as the trie keys it: IPv4 as IPv4-mapped IPv6, so one trie serves both.
func peerPrefix(p netip.Prefix) bpf.PodnetPeerPrefix {
	p = p.Masked()
	bits := p.Bits()
	addr := p.Addr()
	if addr.Is4() {
		addr = netip.AddrFrom16(addr.As16())
		bits += 96
	}
	return bpf.PodnetPeerPrefix{Prefixlen: uint32(bits), Addr: addr.As16()}
}
