package kernel

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// drain empties the ring without blocking.
func drain(tr *Tracer) {
	if tr.Events() == nil {
		return
	}
	var rec ringbuf.Record
	tr.Events().SetDeadline(time.Now())
	for {
		if err := tr.Events().ReadInto(&rec); errors.Is(err, os.ErrDeadlineExceeded) || err != nil {
			return
		}
	}
}
