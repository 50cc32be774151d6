package podnetreceiver

import (
	"fmt"
	"reflect"

	"github.com/podnet/podnet/receiver/internal/k8smeta"
	"github.com/podnet/podnet/receiver/internal/kernel"
)

// settingChoices lists, by path, the settings that take one of a few words: a value of another
// type (a number, a list) is refused with these words instead of the decoder's Go type names.
var settingChoices = map[string][]string{
	"hooks":                 words(kernel.HookModes),
	"ring_buffers":          {ringBuffersShared, ringBuffersPerCPU},
	"live_reads":            {liveReadsAuto, liveReadsWalk},
	"metrics_aggregation":   {aggregationAuto, aggregationKernel, aggregationEvents},
	"service_backends.mode": {backendsAuto, backendsOn, backendsOff},
	"dns_names.mode":        {dnsNamesAuto, dnsNamesOff},
	"kubernetes.auth_type":  words([]k8smeta.AuthType{k8smeta.AuthTypeNone, k8smeta.AuthTypeServiceAccount, k8smeta.AuthTypeKubeConfig}),
	"kubernetes.peer_pods":  words([]k8smeta.PeerPods{k8smeta.PeerPodsAll, k8smeta.PeerPodsEndpoints, k8smeta.PeerPodsNone}),
}

func words[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// settingType refuses a value the decoder would only refuse in Go's terms ("expected type
// 'kernel.HookMode', got unconvertible type 'int'"): a setting of a few words given a number,
// list or section, a switch given anything but true or false. nil (an empty YAML value, or an
// environment variable that expands to nothing) is left to the decoder, whose empty word a
// setting's Validate refuses; but a switch it would set to false, silently turning a feature
// off (found by an independent check: `handshake_histogram:` passed validate and dropped the
// histogram), so it is refused here.
func settingType(path string, kind reflect.Kind, v any) error {
	if v == nil {
		if kind == reflect.Bool {
			return fmt.Errorf("%s: has no value; use true or false, or leave it out for its default", path)
		}
		return nil
	}
	switch kind {
	case reflect.String:
		if _, ok := v.(string); ok {
			return nil
		}
		if choices, ok := settingChoices[path]; ok {
			return fmt.Errorf("%s: %v is not one of its values; use one of %q", path, v, choices)
		}
		return nil // free text: the decoder's own rules (it takes an environment variable's digits as text)
	case reflect.Bool:
		if _, ok := v.(bool); ok {
			return nil
		}
		return fmt.Errorf("%s: %v is not a switch; use true or false", path, v)
	}
	return nil
}
