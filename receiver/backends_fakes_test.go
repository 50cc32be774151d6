package podnetreceiver

import "github.com/podnet/podnet/bpf"

// BackendsErr: the fake kernel follows no Service connection and was never asked to.
func (f *fakeKernel) BackendsErr() error { return nil }

// ListenDrops: the fake kernel has no listeners.
func (f *fakeKernel) ListenDrops(func(*bpf.PodnetListenDrops)) error { return nil }
