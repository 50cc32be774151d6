// Package agentstats is the JSON line podnet-agent prints when it stops and the harness
// reads: one definition for both sides.
package agentstats // import "github.com/podnet/podnet/bench/internal/agentstats"

// Counters are podnet's own telemetry for the run plus what the pipelines received.
type Counters struct {
	EventsReceived int64 `json:"events_received"`
	EventsLost     int64 `json:"events_lost"`
	// EventsSubmitted is what the kernel wrote to the ring: received + lost, when nothing is
	// missing in between.
	EventsSubmitted int64 `json:"events_submitted"`
	RecursionMisses int64 `json:"recursion_misses"`
	// RecursionCovered are skipped program runs podnet made up for (not loss): state changes the
	// second program did, and marks after which a live read walked every connection.
	RecursionCovered int64 `json:"recursion_covered"`
	EventsDropped    int64 `json:"events_dropped"`
	DecodeErrors     int64 `json:"decode_errors"`
	Untracked        int64 `json:"connections_untracked"`
	LogRecords       int64 `json:"log_records"`
	LogBytes         int64 `json:"log_bytes"`
	MetricPoints     int64 `json:"metric_points"`
	MetricBytes      int64 `json:"metric_bytes"`
	// NetnsEvents and NetnsMetrics are what podnet reported for the namespace given with
	// -count-netns: log records by EventName, and cumulative connection counts by
	// "<metric>/<role>" at the last emission.
	NetnsEvents  map[string]int64 `json:"netns_events,omitempty"`
	NetnsMetrics map[string]int64 `json:"netns_metrics,omitempty"`
}
