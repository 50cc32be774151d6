//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
)

// registry gives one receiver per configuration however many pipelines (logs, metrics) use it,
// so the kernel programs are attached once. It is a small copy of the collector's internal
// sharedcomponent, owned by one factory rather than a package-level map.
type registry struct {
	mu        sync.Mutex
	receivers map[*Config]*shared
}

func newRegistry() *registry { return &registry{receivers: map[*Config]*shared{}} }

// shared is the component handed to every pipeline: Start and Shutdown run once.
type shared struct {
	*podnetReceiver
	startOnce    sync.Once
	startErr     error
	shutdownOnce sync.Once
	shutdownErr  error
	remove       func()

	mu     sync.Mutex
	status *statusFanout // set by the first Start
}

func (r *registry) getOrAdd(cfg *Config, create func() *podnetReceiver) *shared {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.receivers[cfg]; ok {
		return s
	}
	s := &shared{podnetReceiver: create()}
	s.remove = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.receivers, cfg)
	}
	r.receivers[cfg] = s
	return s
}

// Start starts the receiver with the first pipeline's host; every later pipeline's host
// hears its status too (statusFanout).
func (s *shared) Start(ctx context.Context, host component.Host) error {
	s.mu.Lock()
	first := s.status == nil
	if first {
		s.status = newStatusFanout(host)
	} else {
		s.status.add(host)
	}
	s.mu.Unlock()
	s.startOnce.Do(func() { s.startErr = s.podnetReceiver.Start(ctx, s.status) })
	return s.startErr
}

func (s *shared) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.shutdownErr = s.podnetReceiver.Shutdown(ctx)
		s.remove()
	})
	return s.shutdownErr
}
