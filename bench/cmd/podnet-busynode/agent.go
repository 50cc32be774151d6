package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/podnet/podnet"
)

// startup is what the agent process measures of its own start and reports as one JSON line.
type startup struct {
	// StartMillis: Start called until it returned (programs attached, first /proc scan done).
	StartMillis float64 `json:"start_ms"`
	// FoundMillis: Start called until the scan for connections open before podnet finished.
	FoundMillis float64 `json:"found_ms"`
	// Records: podnet.tcp.connection.found records delivered (every TCP socket of the node).
	Records int64 `json:"records"`
	RSSKiB  int64 `json:"rss_kib"`
	HWMKiB  int64 `json:"hwm_kib"`
	// HeapInuse: Go heap in use after a GC.
	HeapInuse uint64 `json:"heap_inuse"`
}

// foundMessage is the Info line podnet logs when the start-up scan is done.
const foundMessage = "podnet found the connections that were open before it started"

// runAgent is the -agent mode: podnet's receiver (logs and metrics) on its own in this
// process, so its memory and CPU are apart from the harness. It prints its startup JSON,
// then waits for stdin to close and shuts down.
func runAgent() error {
	found := make(chan time.Time, 1)
	logger, err := zap.NewProduction(zap.Hooks(func(e zapcore.Entry) error {
		if strings.HasPrefix(e.Message, foundMessage) {
			select {
			case found <- time.Now():
			default:
			}
		}
		return nil
	}))
	if err != nil {
		return err
	}
	var records atomic.Int64
	logs, _ := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			for _, sl := range ld.ResourceLogs().At(i).ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.EventName() == "podnet.tcp.connection.found" {
						records.Add(1)
					}
				}
			}
		}
		return nil
	})
	metrics, _ := consumer.NewMetrics(func(context.Context, pmetric.Metrics) error { return nil })
	f := podnet.NewFactory()
	cfg := f.CreateDefaultConfig()
	set := receivertest.NewNopSettings(f.Type())
	set.Logger = logger
	ctx := context.Background()
	lr, err := f.CreateLogs(ctx, set, cfg, logs)
	if err != nil {
		return err
	}
	mr, err := f.CreateMetrics(ctx, set, cfg, metrics)
	if err != nil {
		return err
	}
	comps := []component.Component{lr, mr}
	begin := time.Now()
	for _, c := range comps {
		if err := c.Start(ctx, componenttest.NewNopHost()); err != nil {
			return err
		}
	}
	var s startup
	s.StartMillis = ms(time.Since(begin))
	select {
	case at := <-found:
		s.FoundMillis = ms(at.Sub(begin))
	case <-time.After(2 * time.Minute):
		return errors.New("the start-up scan did not finish in 2 minutes")
	}
	// The found connections are delivered in batches after the scan: wait until they stop.
	for last := int64(-1); last != records.Load(); time.Sleep(time.Second) {
		last = records.Load()
	}
	s.Records = records.Load()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.HeapInuse = m.HeapInuse
	s.RSSKiB, s.HWMKiB = kiBField("/proc/self/status", "VmRSS:"), kiBField("/proc/self/status", "VmHWM:")
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		return err
	}
	_, _ = os.Stdin.Read(make([]byte, 1)) // the harness never writes: any return is EOF
	var errs []error
	for _, c := range comps {
		errs = append(errs, c.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
