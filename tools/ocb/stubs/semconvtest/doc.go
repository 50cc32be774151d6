// Package semconvtest is an empty stand-in: k8sattributesprocessor imports it only from its
// tests, but `go mod tidy` (run by ocb) still resolves it, and this machine's module proxy
// refuses the real version. Nothing in otelcol-podnet links it.
package semconvtest
