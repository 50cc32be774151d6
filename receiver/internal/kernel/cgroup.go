//go:build linux

package kernel

import (
	"github.com/cilium/ebpf/btf"
)

// cgroupIDsReadable says whether sockets name their cgroup on this kernel, in the layout of 5.15+
// (sock_cgroup_data.cgroup) or the older one (sock_cgroup_data.val), as bpf/sock.h reads them.
func cgroupIDsReadable() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var data *btf.Struct
	if spec.TypeByName("sock_cgroup_data", &data) != nil {
		return false
	}
	return hasMember(data.Members, "cgroup") || hasMember(data.Members, "val")
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
