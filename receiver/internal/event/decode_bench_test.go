package event

import "testing"

// BenchmarkDecode is the per-record cost on the read loop (PLATFORM: binary.Read was ~1 µs).
func BenchmarkDecode(b *testing.B) {
	rec := raw(kernelEvent())
	clock := FixedClock(0)
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(rec, clock, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassify is what both conversions ask of every event: its name, role, whether it
// failed and, for failed connects, the error.type.
func BenchmarkClassify(b *testing.B) {
	errnos := []int32{0, 111, 110, 113, 125}
	e := Event{Type: Connect, Role: Client}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Errno = errnos[i%len(errnos)]
		_, _ = e.Type.Name(), e.Role.String()
		if e.Failed() {
			_ = ErrorType(e.Errno)
		}
		i++
	}
}
