//go:build linux && (amd64 || arm64)

package kernel

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// maxExclusions is what each exclusion map holds (bpf/maps.h): the config accepts no more.
const maxExclusions = 256

// RingCarries says whether the ring takes events of type t (RingTypes).
func (o Options) RingCarries(t bpf.PodnetEventType) bool {
	return o.RingTypes == 0 || o.RingTypes&(1<<t) != 0
}

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
	// Live reads need 5.13+ (bpf_for_each_map_elem): a kernel without atomics (5.12+) has no
	// walk either, and the programs' exchanges for them stay dead code, never verified.
	atomics := kernelAtomics() && !opts.noAtomics
	if err := spec.Variables[bpf.PodnetVarAtomics].Set(atomics); err != nil {
		return err
	}
	if err := spec.Variables[bpf.PodnetVarLiveReads].Set(!opts.NoLiveReads && atomics); err != nil {
		return err
	}
	if err := spec.Variables[bpf.PodnetVarKeepListeners].Set(!opts.NoListenerScan); err != nil {
		return err
	}
	if opts.NoListenerScan {
		spec.Maps[bpf.PodnetMapListeners].MaxEntries = 1 // never written (keep_listeners)
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
	if guard, ok := ipv4Guard(opts.ExcludePeers); ok {
		k := peerPrefix(guard)
		if err := coll.Maps[bpf.PodnetMapExcludedPeers].Put(&k, uint8(0)); err != nil {
			return fmt.Errorf("excluded peer ranges: %w", err)
		}
	}
	return nil
}

// ipv4Guard is the entry that keeps IPv4 peers out of IPv6 ranges, where one is needed. The trie
// keys IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), which an IPv6 range of /96 or wider around
// :: (::/0, ::/1...) contains: excluding "::/0" (all IPv6) excluded every IPv4 peer too. An
// entry for the whole mapped range that excludes nothing (value 0) is the longest match of
// every IPv4 peer no IPv4 range holds; IPv4 ranges, longer, still match theirs. Not when
// 0.0.0.0/0 is excluded itself: that is the same key.
func ipv4Guard(peers []netip.Prefix) (netip.Prefix, bool) {
	mapped := netip.PrefixFrom(netip.AddrFrom16(netip.IPv4Unspecified().As16()), 96)
	need := false
	for _, p := range peers {
		p = CanonicalPrefix(p)
		if p.Addr().Is4() && p.Bits() == 0 {
			return netip.Prefix{}, false
		}
		if p.Addr().Is6() && p.Bits() <= 96 && p.Masked().Contains(mapped.Addr()) {
			need = true
		}
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0), need
}

// peerPrefix is a range as the trie keys it: IPv4 as IPv4-mapped IPv6, so one trie serves both.
// An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is its IPv4 range (CanonicalPrefix).
func peerPrefix(p netip.Prefix) bpf.PodnetPeerPrefix {
	p = CanonicalPrefix(p)
	bits := p.Bits()
	addr := p.Addr()
	if addr.Is4() {
		addr = netip.AddrFrom16(addr.As16())
		bits += 96
	}
	return bpf.PodnetPeerPrefix{Prefixlen: uint32(bits), Addr: addr.As16()}
}
