//go:build linux && (amd64 || arm64)

package kernel

import (
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/podnet/podnet/bpf"
)

// cgroupIDsReadable says whether sockets name their cgroup on this kernel, in the layout of 5.15+
// (sock_cgroup_data.cgroup) or the older one (sock_cgroup_data.val), as bpf/sock.h reads them.
func cgroupIDsReadable() bool { return kernelFeatures().cgroupIDs }

// castSupported says whether the kernel has the bpf_rdonly_cast kfunc (6.2+; every program
// type may call it).
func castSupported() bool { return kernelFeatures().cast }

// errorReportTracepoint says whether the kernel has the inet_sk_error_report tracepoint (5.14+).
func errorReportTracepoint() bool { return kernelFeatures().errorReport }

// features is what podnet asks of the kernel's own BTF.
type features struct{ cast, cgroupIDs, markHooks, mptcpMarks, errorReport, uring bool }

// kernelFeatures reads the kernel's BTF once per process: parsing it takes tens of milliseconds
// and tens of MB (cilium/ebpf does not cache it), and the kernel does not change while podnet
// runs. An unreadable BTF answers no to both (the load then fails and says why).
var kernelFeatures = sync.OnceValue(func() features {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return features{}
	}
	var fn *btf.Func
	var data *btf.Struct
	return features{
		cast: spec.TypeByName("bpf_rdonly_cast", &fn) == nil,
		cgroupIDs: spec.TypeByName("sock_cgroup_data", &data) == nil &&
			(hasMember(data.Members, "cgroup") || hasMember(data.Members, "val")),
		markHooks:   kernelHas(spec, markPrograms[bpf.PodnetProgSentTpBtf]) && kernelHas(spec, markPrograms[bpf.PodnetProgArrivedTpBtf]),
		mptcpMarks:  kernelHas(spec, markPrograms[bpf.PodnetProgMptcpSentTpBtf]),
		errorReport: kernelHas(spec, "btf_trace_inet_sk_error_report"),
		// io_uring requests with their command in front (6.0+), and a completion tracepoint
		// that names its request (5.19+): what uring_complete reads.
		uring: kernelHas(spec, "btf_trace_io_uring_complete") && structHas(spec, "io_kiocb", "cmd") &&
			structHas(spec, "trace_event_raw_io_uring_complete", "req") && structHas(spec, "io_connect", "addr") &&
			structHas(spec, "io_accept", "file_slot"),
	}
})

// structHas says whether the kernel has struct name with member (anonymous ones looked through).
func structHas(spec *btf.Spec, name, member string) bool {
	var s *btf.Struct
	return spec.TypeByName(name, &s) == nil && hasMember(s.Members, member)
}

// hasMember looks through anonymous unions and structs, as CO-RE does (the old `val` is in one).
func hasMember(members []btf.Member, name string) bool {
	for _, m := range members {
		if m.Name == name {
			return true
		}
		if m.Name == "" {
			switch c := btf.UnderlyingType(m.Type).(type) {
			case *btf.Union:
				if hasMember(c.Members, name) {
					return true
				}
			case *btf.Struct:
				if hasMember(c.Members, name) {
					return true
				}
			}
		}
	}
	return false
}
