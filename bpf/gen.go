// Package bpf holds podnet's kernel programs and the Go loader bpf2go generates from them.
// The generated .go and .o files are committed so that `go build` and ocb need no clang;
// `make generate` rebuilds them byte for byte with Debian's clang 14.
package bpf

//go:generate sh -c "cd ../tools && go tool bpf2go -go-package bpf -output-dir ../bpf -cc clang -target amd64,arm64 -type event -type event_type -type role -type event_flag -type counter -type close_reason -type handshake_histogram -type listen_drops -type listen_closed -type agg_key -type agg_value -type agg_key_drop -type agg_key_flag Podnet ../bpf/podnet.bpf.c -- -I../bpf/headers -I../bpf -Wall -Werror"

// The DNS-names program (issue 18) is an object of its own, loaded only with dns_names on.
//go:generate sh -c "cd ../tools && go tool bpf2go -go-package bpf -output-dir ../bpf -cc clang -target amd64,arm64 -type response -type counter Dns ../bpf/dns.bpf.c -- -I../bpf/headers -I../bpf -Wall -Werror"
