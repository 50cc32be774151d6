package main

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// sink stands in for a pipeline's exporter: it serialises every batch to OTLP protobuf, as
// an OTLP exporter would, counts it and discards it. A consumer that did nothing would hide
// the cost the receiver's output puts on a real collector.
type sink struct {
	logRecords, logBytes      atomic.Int64
	metricPoints, metricBytes atomic.Int64
	netns                     *netnsCount
}

func (s *sink) logs() consumer.Logs {
	var m plog.ProtoMarshaler
	c, _ := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		b, err := m.MarshalLogs(ld)
		if err != nil {
			return err
		}
		s.netns.addLogs(ld)
		s.logRecords.Add(int64(ld.LogRecordCount()))
		s.logBytes.Add(int64(len(b)))
		return nil
	})
	return c
}

func (s *sink) metrics() consumer.Metrics {
	var m pmetric.ProtoMarshaler
	c, _ := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		b, err := m.MarshalMetrics(md)
		if err != nil {
			return err
		}
		s.netns.addMetrics(md)
		s.metricPoints.Add(int64(md.DataPointCount()))
		s.metricBytes.Add(int64(len(b)))
		return nil
	})
	return c
}
