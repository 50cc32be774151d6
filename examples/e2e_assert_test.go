package examples

import (
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// connRecord is what the test asserts about one podnet log record, exactly.
type connRecord struct {
	Inode      int64 // resource podnet.netns.inode
	Event      string
	Severity   string
	Role       string
	Local      string
	LocalPort  int64
	Peer       string
	PeerPort   int64
	Pid        int64
	Executable string
	Error      string
	Sent       int64 // close only
	Received   int64 // close only
}

// closeTiming is what is asserted loosely (it varies) about a close record.
type closeTiming struct {
	Duration, RTT float64
}

func intAttr(m pcommon.Map, k string) int64 {
	v, _ := m.Get(k)
	return v.Int()
}

func strAttr(m pcommon.Map, k string) string {
	v, _ := m.Get(k)
	return v.Str()
}

// podnetRecords returns the records of the namespaces in inodes, in arrival order; the rest of
// the machine's traffic is ignored.
func podnetRecords(all []plog.Logs, inodes []int64) ([]connRecord, []closeTiming) {
	var recs []connRecord
	var timings []closeTiming
	for _, ld := range all {
		for _, rl := range ld.ResourceLogs().All() {
			inode := intAttr(rl.Resource().Attributes(), "podnet.netns.inode")
			if !slices.Contains(inodes, inode) {
				continue
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					a := lr.Attributes()
					recs = append(recs, connRecord{
						Inode: inode, Event: lr.EventName(), Severity: lr.SeverityNumber().String(),
						Role:  strAttr(a, "podnet.connection.role"),
						Local: strAttr(a, "network.local.address"), LocalPort: intAttr(a, "network.local.port"),
						Peer: strAttr(a, "network.peer.address"), PeerPort: intAttr(a, "network.peer.port"),
						Pid: intAttr(a, "process.pid"), Executable: strAttr(a, "process.executable.name"),
						Error: strAttr(a, "error.type"),
						Sent:  intAttr(a, "podnet.tcp.bytes_sent"), Received: intAttr(a, "podnet.tcp.bytes_received"),
					})
					if lr.EventName() == "podnet.tcp.close" {
						d, _ := a.Get("podnet.connection.duration")
						rtt, _ := a.Get("podnet.tcp.rtt")
						timings = append(timings, closeTiming{Duration: d.Double(), RTT: rtt.Double()})
					}
				}
			}
		}
	}
	return recs, timings
}

// assertedMetrics are the integer sums whose values the traffic fixes exactly.
var assertedMetrics = []string{
	"podnet.tcp.connections", "podnet.tcp.connections.closed", "podnet.tcp.bytes_sent",
	"podnet.tcp.bytes_received", "podnet.tcp.retransmits",
}

// seriesKey names a data point: namespace, metric and its attributes.
func seriesKey(inode int64, metric, role, peer string, port int64, errType string) string {
	return fmt.Sprintf("%d %s role=%s peer=%s server.port=%d error.type=%s", inode, metric, role, peer, port, errType)
}

// latestSums returns the newest cumulative value of each asserted series of the namespaces
// in inodes.
func latestSums(all []pmetric.Metrics, inodes []int64) map[string]int64 {
	latest := map[string]int64{}
	for _, md := range all {
		for _, rm := range md.ResourceMetrics().All() {
			inode := intAttr(rm.Resource().Attributes(), "podnet.netns.inode")
			if !slices.Contains(inodes, inode) {
				continue
			}
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if !slices.Contains(assertedMetrics, m.Name()) {
						continue
					}
					for _, dp := range m.Sum().DataPoints().All() {
						a := dp.Attributes()
						k := seriesKey(inode, m.Name(), strAttr(a, "podnet.connection.role"),
							strAttr(a, "network.peer.address"), intAttr(a, "server.port"), strAttr(a, "error.type"))
						latest[k] = dp.IntValue()
					}
				}
			}
		}
	}
	return latest
}
