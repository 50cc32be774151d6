package netnstest

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// A function that stops its goroutine (as t.FailNow does when a helper fails inside Do) makes
// Do return an error instead of waiting forever.
func TestDoReturnsWhenTheFunctionStops(t *testing.T) {
	pod := NewNetwork(t, 211).AddPod()
	require.NoError(t, pod.Do(func() error { return nil }))
	require.ErrorIs(t, pod.Do(func() error {
		runtime.Goexit()
		return nil
	}), errStopped)
}
