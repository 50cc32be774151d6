package main

import "github.com/cilium/ebpf"

// podnetStatePrograms are the kernel names (truncated to 15 bytes) of podnet's per-state-change
// program; exactly one is loaded per podnet instance.
var podnetStatePrograms = map[string]bool{"state_tp_btf": true, "state_tracepoin": true}

// observers counts the podnet instances attached to the kernel right now: ours, and any other
// (another test on this shared machine). They run on every connection in every namespace, so
// a baseline run while one is attached is not a baseline; the report flags such runs.
func observers() int {
	n := 0
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil { // os.ErrNotExist after the last program
			return n
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		_ = p.Close()
		if err == nil && podnetStatePrograms[info.Name] {
			n++
		}
	}
}
