package podnetreceiver

// BackendsErr: the fake kernel follows no Service connection and was never asked to.
func (f *fakeKernel) BackendsErr() error { return nil }
