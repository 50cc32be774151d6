//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
)

func TestStatusFanoutTellsEveryHostAndReplaysTheRecentReports(t *testing.T) {
	first, second, late := &statusHost{}, &statusHost{}, &statusHost{}
	h := newStatusFanout(first)
	h.Report(componentstatus.NewEvent(componentstatus.StatusOK))
	h.add(second)
	for range maxReplayed {
		h.Report(componentstatus.NewRecoverableErrorEvent(errors.New("away")))
	}
	h.Report(componentstatus.NewEvent(componentstatus.StatusOK))
	h.add(late)
	h.add(componenttest.NewNopHost()) // hears no status: left out, nothing fails

	want := []componentstatus.Status{componentstatus.StatusOK}
	for range maxReplayed {
		want = append(want, componentstatus.StatusRecoverableError)
	}
	want = append(want, componentstatus.StatusOK)
	assert.Equal(t, want, first.events, "the first host hears every report")
	assert.Equal(t, want, second.events, "a later host hears what was said before it, then the rest")
	assert.Equal(t, want[len(want)-maxReplayed:], late.events, "a late host hears the last reports")
}
