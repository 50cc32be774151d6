package podnetreceiver

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
)

// Unmarshal decodes the user's settings as the collector does, after refusing a number that
// an integer setting would not hold as written (the decoder converts with Go's conversions,
// which truncate 4096.5 to 4096 and wrap a number beyond 64 bits, as YAML reads it, into a
// negative one the user never wrote, which Validate would then show) and a value of the wrong
// kind for a word or a switch (settingType: the decoder names Go types, not the fix).
func (cfg *Config) Unmarshal(conf *confmap.Conf) error {
	if err := valueKinds(reflect.TypeFor[Config](), conf.ToStringMap(), ""); err != nil {
		return err
	}
	return conf.Unmarshal(cfg)
}

// valueKinds checks raw's values for t's int, string and bool fields (by their mapstructure
// names, in nested sections and lists too), so a setting added later is covered without being
// listed.
func valueKinds(t reflect.Type, raw map[string]any, prefix string) error {
	var errs []error
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		v, ok := raw[name]
		if !ok || name == "" {
			continue
		}
		switch path := prefix + name; {
		case f.Type.Kind() == reflect.Int:
			errs = append(errs, wholeNumber(path, v))
		case f.Type == reflect.TypeFor[time.Duration]():
			errs = append(errs, durationNumber(path, v))
		case f.Type.Kind() == reflect.String, f.Type.Kind() == reflect.Bool:
			errs = append(errs, settingType(path, f.Type.Kind(), v))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Int:
			list, _ := v.([]any)
			for i, e := range list {
				errs = append(errs, wholeNumber(fmt.Sprintf("%s[%d]", path, i), e))
			}
		case f.Type.Kind() == reflect.Struct:
			if section, ok := v.(map[string]any); ok {
				errs = append(errs, valueKinds(f.Type, section, path+"."))
			}
		}
	}
	return errors.Join(errs...)
}

// wholeNumber refuses what an int would not hold as written, and text (which the decoder
// refuses naming Go types) with the number to write instead where the text is a size with a
// unit (`ring_buffer_size: 8MiB`, found by an independent check).
func wholeNumber(path string, v any) error {
	const tooFar = "%s: %v is too %s for any podnet setting (see the README's Configuration table for this one's range)"
	switch n := v.(type) {
	case float64:
		switch {
		case n >= math.MaxInt64:
			return fmt.Errorf(tooFar, path, n, "large")
		case n < math.MinInt64:
			return fmt.Errorf(tooFar, path, n, "small")
		case n != math.Trunc(n):
			return fmt.Errorf("%s: %v is not a whole number; write an integer (%v or %v)", path, n, math.Floor(n), math.Ceil(n))
		}
	case uint64:
		if n > math.MaxInt64 {
			return fmt.Errorf(tooFar, path, n, "large")
		}
	case string:
		if number, ok := sizeInBytes(n); ok {
			return fmt.Errorf("%s: %q is text; write %d (an integer, without quotes or unit)", path, n, number)
		}
		return fmt.Errorf("%s: %q is text; write an integer, without quotes or unit", path, n)
	}
	return nil
}

// durationNumber refuses a duration written as a number that is not whole: the decoder reads a
// bare number as nanoseconds and truncates it, so `shutdown_timeout: 2.5` (2.5 s meant) became
// 2ns, told to write "2s", and `poll_interval: 1500000.9` was taken as 1.5 ms without a word
// (found by an independent check). A whole number stays nanoseconds (Validate's unitHint).
func durationNumber(path string, v any) error {
	if n, ok := v.(float64); ok && n != math.Trunc(n) {
		return fmt.Errorf("%s: %v is a number without a unit, which reads as nanoseconds and is not a whole one; write the duration with its unit, e.g. %vs or %vms", path, n, n, n)
	}
	return nil
}

// sizeUnits are the units a size may be written with elsewhere: IEC (KiB), Kubernetes
// quantities (Ki, and k/M/G as powers of 1000) and SI (kB, KB, MB).
var sizeUnits = map[string]int64{
	"b": 1, "": 1,
	"kib": 1 << 10, "ki": 1 << 10, "mib": 1 << 20, "mi": 1 << 20, "gib": 1 << 30, "gi": 1 << 30,
	"kb": 1e3, "k": 1e3, "mb": 1e6, "m": 1e6, "gb": 1e9, "g": 1e9,
}

// sizeInBytes reads text such as "8MiB" or "64 Ki" as bytes.
func sizeInBytes(text string) (int64, bool) {
	text = strings.TrimSpace(text)
	digits := strings.IndexFunc(text, func(r rune) bool { return r < '0' || r > '9' })
	if digits == -1 {
		digits = len(text)
	}
	n, err := strconv.ParseInt(text[:digits], 10, 64)
	unit, known := sizeUnits[strings.ToLower(strings.TrimSpace(text[digits:]))]
	if err != nil || !known || n > math.MaxInt64/unit {
		return 0, false
	}
	return n * unit, true
}
