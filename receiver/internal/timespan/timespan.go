// Package timespan is the time over which an answer holds, in Unix ns. A package of its own,
// with no dependency, so that k8smeta (which answers who held an address when) and attribution
// (which asks it) share one type: attribution imports procscan, which is Linux-only, and k8smeta
// must build everywhere.
package timespan // import "github.com/podnet/podnet/receiver/internal/timespan"

import "math"

// Span is [From, To) in Unix ns. Addresses change hands (a pod is deleted, a new one gets its
// IP), so a peer is named as of a time, and its name holds over a span.
type Span struct{ From, To int64 }

// Always is the span of an answer that holds at any time.
var Always = Span{From: math.MinInt64, To: math.MaxInt64}

// Holds says whether at falls in the span.
func (s Span) Holds(at int64) bool { return s.From <= at && at < s.To }
