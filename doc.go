// Package podnet is the OpenTelemetry Collector receiver "podnet": pod-to-pod TCP from eBPF.
// It is the package an ocb `gomod:` line names, and it holds metadata.yaml with mdatagen's
// output (internal/metadata, generated tests) beside it, as mdatagen requires; ./receiver
// implements the component (Linux on amd64 and arm64) and ./bpf holds the kernel programs.
// Elsewhere NewFactory registers the same type and Config, and Start says what podnet needs.
package podnet // import "github.com/podnet/podnet"

//go:generate sh tools/mdatagen.sh
