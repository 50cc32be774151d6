package examples

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// expectOutput polls read until the namespaces' records and metric values are those expected
// (or within has passed), then requires exactly them; where names the output in failures.
// It returns the close records' timings for further checks.
func expectOutput(t *testing.T, where string, within, every time.Duration, read func() ([]plog.Logs, []pmetric.Metrics),
	inodes []int64, wantRecords []connRecord, wantSums map[string]int64,
) []closeTiming {
	t.Helper()
	var gotRecords []connRecord
	var timings []closeTiming
	var gotSums map[string]int64
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(every) {
		logs, metrics := read()
		gotRecords, timings = podnetRecords(logs, inodes)
		gotSums = latestSums(metrics, inodes)
		if len(gotRecords) >= len(wantRecords) && cmp.Equal(wantSums, gotSums) {
			break
		}
	}
	// curl cannot report the ephemeral port of its refused connect (wantRecords[0]); podnet can.
	for _, r := range gotRecords {
		if r.Error != "" && r.LocalPort >= 1024 && r.LocalPort <= 65535 {
			wantRecords[0].LocalPort = r.LocalPort
		}
	}
	byAll := cmpopts.SortSlices(func(a, b connRecord) bool { return fmt.Sprint(a) < fmt.Sprint(b) })
	if d := cmp.Diff(wantRecords, gotRecords, byAll); d != "" {
		t.Errorf("podnet log records of the two pods%s (-want +got):\n%s", where, d)
	}
	if d := cmp.Diff(wantSums, gotSums); d != "" {
		t.Errorf("podnet metric values of the two pods%s (-want +got):\n%s", where, d)
	}
	return timings
}
