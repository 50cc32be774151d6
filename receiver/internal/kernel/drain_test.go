package kernel

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// drain empties the ring without blocking.
func drain(tr *Tracer) {
	var rec ringbuf.Record
	tr.SetDeadline(time.Now())
	for {
		if err := tr.ReadInto(&rec); errors.Is(err, os.ErrDeadlineExceeded) || err != nil {
			return
		}
	}
}
