package main

import (
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

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

// observerEvery is how often a run samples observers(): another podnet attached for part of a
// run only taxes that part all the same. A sample walks every BPF program on the machine (a
// syscall or three each), so not much more often.
const observerEvery = 150 * time.Millisecond

// watchObservers samples count every so often until the returned stop is called, and stop
// returns the most it saw, a last sample included. stop may be called more than once.
func watchObservers(count func() int, every time.Duration) (stop func() int) {
	done, peak := make(chan struct{}), make(chan int)
	go func() {
		most := count()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				most = max(most, count())
			case <-done:
				peak <- max(most, count())
				return
			}
		}
	}()
	return sync.OnceValue(func() int { close(done); return <-peak })
}
