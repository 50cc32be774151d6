//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"go.uber.org/zap"

	"github.com/podnet/podnet/bpf"
	"github.com/podnet/podnet/receiver/internal/event"
)

// findExisting runs the kernel's start-up scan, once, right after the hooks are attached:
// the established connections that predate podnet are tracked from then on (their progress
// and their close are counted), and returned decoded with clock to be reported like ring
// events. With a nil clock the scan still runs, for that tracking, and its records are not
// decoded (in-kernel aggregation has no events). One line says how many were found.
func (k *kernelSide) findExisting(clock *event.Clock, logger *zap.Logger) []event.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.src.IteratorsUnavailable() != nil { // said once at Start
		return nil
	}
	var found []event.Event
	var malformed int64
	scan := func() (int, error) {
		return k.src.FindExisting(func(raw *bpf.PodnetEvent) {
			if clock == nil {
				return
			}
			found = append(found, event.Event{})
			if event.FromKernel(raw, clock, &found[len(found)-1]) != nil {
				found = found[:len(found)-1]
				malformed++
			}
		})
	}
	n, err := scan()
	if err != nil {
		// What it read before the error is kept (the kernel tracks those connections now), and
		// a second scan goes on with the rest: it skips what the first reported (found by an
		// independent review: a read error dropped every record read, and nothing retried).
		more, errAgain := scan()
		n += more
		if errAgain != nil {
			logger.Warn("podnet: the start-up scan for connections open before podnet started failed twice; "+
				"connections it did not reach are reported at their close, untracked",
				zap.Int("connections", n), zap.NamedError("first", err), zap.Error(errAgain))
		} else {
			logger.Warn("podnet: the start-up scan for connections open before podnet started failed once, then finished",
				zap.Int("connections", n), zap.Error(err))
		}
	} else {
		logger.Info("podnet found the connections that were open before it started", zap.Int("connections", n))
	}
	k.loss.decodeErrors(malformed)
	return found
}
