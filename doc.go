// Package podnet is the OpenTelemetry Collector receiver component "podnet": pod-to-pod TCP
// visibility from eBPF. This package is what an ocb `gomod:` line names; the implementation
// lives in ./receiver and the kernel programs in ./bpf.
package podnet // import "github.com/podnet/podnet"

//go:generate sh tools/mdatagen.sh
