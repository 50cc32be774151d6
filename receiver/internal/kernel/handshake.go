//go:build linux && (amd64 || arm64)

package kernel

import (
	"github.com/cilium/ebpf"

	"github.com/podnet/podnet/bpf"
)

// HandshakeBoundsMicros are the handshake-duration histogram's bucket upper bounds in µs, from a
// loopback handshake (tens of µs) to SYN retries (1 s each, then doubling): the in-kernel
// aggregation buckets by them (bpf/aggregate.h) and the receiver reports them. The last bucket
// holds everything above.
var HandshakeBoundsMicros = [bpf.PodnetHandshakeHistogramHANDSHAKE_BOUNDS]uint32{
	25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
	250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
}

// HandshakeBucket is the bucket of a duration in µs, as the kernel picks it.
func HandshakeBucket(us uint32) int {
	for i, b := range HandshakeBoundsMicros {
		if us <= b {
			return i
		}
	}
	return len(HandshakeBoundsMicros)
}

func setHandshakeBounds(spec *ebpf.CollectionSpec) error {
	return spec.Variables[bpf.PodnetVarHandshakeBoundsUs].Set(HandshakeBoundsMicros)
}
